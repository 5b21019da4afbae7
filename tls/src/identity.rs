//! What a verified client certificate says about who connects: a node of the cluster (subject
//! `OU=tessera-node`, `CN=<node uuid>`) or a named client (`OU=tessera-client`).

use x509_parser::prelude::{FromDer, X509Certificate};

/// The organizational unit of node certificates.
pub const NODE_UNIT: &str = "tessera-node";
/// The organizational unit of client certificates.
pub const CLIENT_UNIT: &str = "tessera-client";

/// Who a certificate names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertName {
    Node(String),
    Client(String),
    /// Signed by the CA but neither: it proves nothing more than the CA's trust.
    Other,
}

/// Reads the subject of `der` (a certificate the TLS handshake already verified).
pub fn name_of(der: &[u8]) -> CertName {
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return CertName::Other;
    };
    let subject = cert.subject();
    let first = |it: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue>| {
        it.next().and_then(|a| a.as_str().ok()).map(str::to_string)
    };
    let cn = first(&mut subject.iter_common_name());
    let unit = first(&mut subject.iter_organizational_unit());
    match (unit.as_deref(), cn) {
        (Some(NODE_UNIT), Some(uuid)) => CertName::Node(uuid),
        (Some(CLIENT_UNIT), Some(name)) => CertName::Client(name),
        _ => CertName::Other,
    }
}

/// Who the first certificate of a PEM bundle names; `None` when it holds none.
pub fn leaf_name(pem: &[u8]) -> Option<CertName> {
    crate::certs_of(pem)
        .ok()
        .and_then(|certs| certs.first().map(|c| name_of(c.as_ref())))
}
