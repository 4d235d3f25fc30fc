//! The magnus binding.
