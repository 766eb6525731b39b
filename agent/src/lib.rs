//! The worker-side heartbeat responder (in progress).
