// volley/metrics: servers' metrics as snapshots of plain numbers (sans-IO), their merge, and the list of
// families both exporters use. The exporters are subpaths of their own, each with its optional peer
// dependency: volley/metrics/prometheus (prom-client), volley/metrics/opentelemetry (@opentelemetry/api).
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
