//! In-memory fake of the seam (in progress).
