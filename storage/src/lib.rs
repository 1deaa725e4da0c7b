//! Warren storage (interface only for now).
