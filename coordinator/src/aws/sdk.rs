//! AWS SDK implementations of the seam (in progress).
