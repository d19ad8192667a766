//! Segment compression codecs (placeholder).
