// The delivery layer's figures JavaScript needs (native/protocol/delivery/delivery.h holds the rest).

/** What a queued message costs the send queue beyond its bytes (native/protocol/delivery/delivery.h). */
export const queuedMessageOverheadBytes = 64
