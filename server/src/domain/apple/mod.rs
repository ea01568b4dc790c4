//! Apple devices under MDM: the push certificates and pushes that wake them
//! (`push`), and, from the codecs in `api/apple`, the check-in
//! messages they send and the commands they are sent.

pub mod push;
