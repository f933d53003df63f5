/**
 * Server metrics as snapshots of plain numbers, their merge across servers or workers, and the list of metric
 * families. The exporters have subpaths of their own, each with an optional peer dependency:
 * `volley/metrics/prometheus` (prom-client) and `volley/metrics/opentelemetry` (@opentelemetry/api).
 * @module volley/metrics
 */
export { type DistributionSnapshot, distributionOf, emptyDistribution, mergeDistributions, quantileFromBuckets } from './distribution.ts'
export {
  lossBuckets,
  metricFamilies,
  metricFamily,
  rttBucketsSeconds,
  type DistributionFamilyName,
  type MetricFamily,
  type MetricFamilyName,
  type MetricType,
  type ValueFamilyName,
} from './families.ts'
export { ServerMetrics, mergeMetricSnapshots, type MetricSample, type MetricSnapshot, type MetricSnapshotSource, type MetricsRegistration } from './snapshot.ts'
