/**
 * Key synchronisation and rotation between two SAEs fed by QKD key managers (KMEs): an ETSI GS QKD 014
 * client and a development KME, the master and slave roles, their two links (signed datagrams, or a Volley
 * connection), and the rotation of a Volley server's private key. It speaks the wire of the reference SAE
 * client ("the reference" below).
 * @module volley/keysync
 */
export { KmeError, type KmeErrorCode, type KmeErrorDetail } from '../../util/errors.ts'
export { DatagramLink, KEYSYNC_PORT, type DatagramLinkOptions, type DatagramLinkStats } from './datagram-link.ts'
export { DevKme, type DevKmeCertificates, type DevKmeCredentials, type DevKmeFiles, type DevKmeOptions, type DevKmeStats } from './dev-kme.ts'
export {
  EnvelopeVerifier,
  generateSaeKeyPair,
  loadPrivateKey,
  loadPublicKey,
  publicKeyPemOf,
  type EnvelopeDropReason,
  type EnvelopeSigner,
  type EnvelopeVerifierOptions,
  type SaeKeyPair,
} from './envelope.ts'
export { MemoryKeyStore, type KeyPersona, type KeyState, type KeyStore, type StoredKey } from './keys.ts'
export { KmeClient, type GetKeysRequest, type GetKeysWithIdsOptions, type KeyContainer, type KmeClientOptions, type KmeStatus, type QkdKey } from './kme-client.ts'
export { KME_MESSAGES } from './kme-wire.ts'
export { TransportLink, type KeySyncLink, type KeySyncLinkEvents } from './link.ts'
export { KeySyncMaster, type KeyRotationResult, type KeySyncMasterOptions, type MasterKeySource, type MasterState } from './master.ts'
export { type KeySyncErrorCode, type KeySyncMessage, type KeySyncMessageType } from './messages.ts'
export {
  KeySyncRole,
  type AgreedRotation,
  type CleanupResult,
  type CompletedRotation,
  type DeliveredKey,
  type KeySyncEvents,
  type KeySyncRoleOptions,
  type KeySyncStats,
} from './role.ts'
export { KeySyncSlave, type KeySyncSlaveOptions, type SlaveKeySource, type SlaveState } from './slave.ts'
export type { KeySyncFailedMessage, KeySyncRotatedMessage } from '../diagnostics.ts'
export { IssuerKey, netcodeKeyFrom, rotateServerKeys, type ServerKeyRotationOptions } from './volley-keys.ts'
