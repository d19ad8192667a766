//! Host checks (placeholder: filled by the doctor work).
