//! The install-base generator (to be written).
