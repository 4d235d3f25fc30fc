//! The gem's delivery engine. Never touches Ruby.
