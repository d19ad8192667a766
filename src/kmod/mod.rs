//! A kernel's module knowledge (placeholder: filled by the module planner work).
