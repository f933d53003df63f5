// A development CA and the certificates it signs, made in memory (no openssl command, nothing secret in the
// repository): ECDSA P-256 keys from node's webcrypto, certificates built with @peculiar/x509. For DevKme,
// `volley kme` and tests; not for production, where certificates come from the operator's own CA.
import 'reflect-metadata' // @peculiar/x509's dependency injection (tsyringe) needs the Reflect metadata API
import { webcrypto } from 'node:crypto'
import { isIP } from 'node:net'
import * as x509 from '@peculiar/x509'
import type { DevCertificates, DevCredential } from './dev-credentials.ts'

export type { DevCertificates, DevCredential }

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0])

/** A development CA: its certificate (PEM) and, in memory only, what it signs with. */
export interface DevCa {
  /** The CA's certificate, PEM: what each side pins (tls's `ca`). */
  cert: string
  /** The parsed certificate and the CA's key pair, to sign more certificates with. */
  readonly certificate: x509.X509Certificate
  readonly keys: webcrypto.CryptoKeyPair
}


const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' }
const hourMs = 60 * 60 * 1000
const dayMs = 24 * hourMs

/** Valid from an hour ago (a clock a little behind still takes it) for `days` days. */
function validity(days: number): { notBefore: Date; notAfter: Date } {
  return { notBefore: new Date(Date.now() - hourMs), notAfter: new Date(Date.now() + days * dayMs) }
}

/** A self-signed CA that may sign end-entity certificates only (path length 0). */
export async function makeDevCa(options: { name?: string; days?: number } = {}): Promise<DevCa> {
  const keys = await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    name: [{ CN: [options.name ?? 'Volley development CA'] }],
    ...validity(options.days ?? 1),
    signingAlgorithm: algorithm,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  })
  return { cert: certificate.toString('pem'), certificate, keys }
}

/**
 * An end-entity certificate signed by `ca`. Its subject is CN=commonName (given as a value, never parsed as
 * a DN: commas and the like are taken as they are). server: the hosts it serves, each an IP or DNS subject
 * alternative name, for TLS server authentication; otherwise a client certificate.
 */
export async function issueDevCertificate(ca: DevCa, commonName: string, options: { server?: readonly string[]; days?: number } = {}): Promise<DevCredential> {
  const keys = await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])
  const server = options.server !== undefined
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension([server ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth]),
    await x509.AuthorityKeyIdentifierExtension.create(ca.certificate),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
  ]
  if (server) {
    const names = options.server!.map((host) => ({ type: isIP(host) !== 0 ? ('ip' as const) : ('dns' as const), value: host }))
    extensions.push(new x509.SubjectAlternativeNameExtension(names))
  }
  const certificate = await x509.X509CertificateGenerator.create({
    subject: [{ CN: [commonName] }],
    issuer: ca.certificate.subject,
    ...validity(options.days ?? 1),
    signingAlgorithm: algorithm,
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    extensions,
  })
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)
  return { cert: certificate.toString('pem'), key: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY') }
}

/**
 * A CA, a server certificate for `host` (default 127.0.0.1) and a client certificate for each of `clients`
 * (its subject CN), all valid from an hour ago for a day.
 */
export async function makeDevCertificates(host = '127.0.0.1', options: { clients?: readonly string[]; caName?: string } = {}): Promise<DevCertificates> {
  const ca = await makeDevCa(options.caName === undefined ? {} : { name: options.caName })
  const server = await issueDevCertificate(ca, host, { server: [host] })
  const clients: Record<string, DevCredential> = {}
  for (const name of options.clients ?? []) clients[name] = await issueDevCertificate(ca, name)
  return { caCert: ca.cert, serverCert: server.cert, serverKey: server.key, clients }
}
