// The shapes of development certificates (PEM strings only), apart from dev-certificates.ts, which makes
// them: a public type here loads neither @peculiar/x509 nor reflect-metadata (which changes the global Reflect).

/** A certificate and its PKCS #8 private key, PEM. */
export interface DevCredential {
  cert: string
  key: string
}

export interface DevCertificates {
  /** The CA's certificate, PEM: what a client pins (tls.connect's `ca`). */
  caCert: string
  /** The server's certificate (for `host`, as an IP or DNS subject alternative name) and its PKCS #8 key, PEM. */
  serverCert: string
  serverKey: string
  /** A client certificate for each name asked for (its subject CN), with its key. */
  clients: Record<string, DevCredential>
}
