//! Interop tests through lapin (one test binary; modules by area).

mod smoke;
