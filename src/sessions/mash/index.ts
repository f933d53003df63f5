/**
 * MASH: requests and responses, subscriptions and keep-alive between a controller and a device, on any
 * session transport, on the wire format of the MASH reference implementation.
 * @module volley/mash
 */
export { MashController, MashSubscription, MASH_REQUEST_TIMEOUT_MS } from './controller.ts'
export type { ManagedConnection } from '../connection-manager.ts'
export type { MashControllerEvents, MashControllerOptions, MashRequestOptions, MashSubscribeOptions, MashSubscriptionEvents, MashSubscriptionState } from './controller.ts'
export { MashDevice, MashDeviceSession, sumDeviceStats, MASH_DEFAULT_MAX_INTERVAL_MS, MASH_DEFAULT_MIN_INTERVAL_MS } from './device.ts'
export type {
  MashAccess,
  MashAttributeDefinition,
  MashAttributeType,
  MashCommandHandler,
  MashDeviceEvents,
  MashDeviceOptions,
  MashDeviceSessionEvents,
  MashDeviceStats,
  MashEndpointDefinition,
  MashFeatureDefinition,
  MashReadHandler,
  MashRequestContext,
  MashWriteHandler,
} from './device.ts'
export { MashStatusError } from './errors.ts'
export type { MashSessionCloseMessage, MashSessionOpenMessage } from '../diagnostics.ts'
export { keepAliveDefaults, type KeepAliveOptions } from './keepalive.ts'
export type { MashLinkStats } from './link.ts'
export type { MashLinkOptions } from './settings.ts'
export {
  MASH_MAX_MESSAGE_BYTES,
  MASH_SENDER_LIMITS,
  MashControlType,
  MashOperation,
  MashStatus,
  decodeMessage,
  encodeMessage,
  mashStatusName,
  sendableProblem,
  type MashControl,
  type MashDecoded,
  type MashMessage,
  type MashNotification,
  type MashRequest,
  type MashResponse,
  type MashStatusName,
  type MashValue,
} from './wire.ts'
