//! Making a development CA and the certificates a cluster needs (`tessera cert`): a node's
//! certificate names its uuid and its hosts and serves both ends (server and client auth), a
//! client's names the client. Production clusters may use any CA: what counts is the subject
//! ([`crate::identity`]) and, for a node, the hosts its peers dial.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::identity::{CLIENT_UNIT, NODE_UNIT};
use crate::TlsError;

/// A certificate and its private key, PEM.
#[derive(Debug, Clone)]
pub struct Pem {
    pub cert: String,
    pub key: String,
}

fn validity(params: &mut CertificateParams, days: u32) {
    let now = time::OffsetDateTime::now_utc();
    // A minute back: clocks of a cluster's hosts are never exactly equal.
    params.not_before = now - time::Duration::minutes(1);
    params.not_after = now + time::Duration::days(i64::from(days.max(1)));
}

fn made(e: rcgen::Error) -> TlsError {
    TlsError::Make(e.to_string())
}

/// A CA named `name`, valid `days`.
pub fn make_ca(name: &str, days: u32) -> Result<Pem, TlsError> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(made)?;
    params
        .distinguished_name
        .push(DnType::CommonName, format!("{name} CA"));
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Tessera");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params, days);
    let key = KeyPair::generate().map_err(made)?;
    let cert = params.self_signed(&key).map_err(made)?;
    Ok(Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// A node's certificate: subject `CN=<uuid>, OU=tessera-node`, the hosts (names or IP
/// addresses) its peers and clients dial, server and client auth.
pub fn make_node(ca: &Pem, node_uuid: &str, hosts: &[String], days: u32) -> Result<Pem, TlsError> {
    if node_uuid.is_empty()
        || !node_uuid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(TlsError::Make(format!("`{node_uuid}` is not a node uuid")));
    }
    if hosts.is_empty() {
        return Err(TlsError::Make(
            "a node certificate names at least one host its peers dial".into(),
        ));
    }
    leaf(ca, node_uuid, NODE_UNIT, hosts.to_vec(), days)
}

/// A client's certificate: subject `CN=<name>, OU=tessera-client`, client auth only.
pub fn make_client(ca: &Pem, name: &str, days: u32) -> Result<Pem, TlsError> {
    if name.is_empty() {
        return Err(TlsError::Make("a client certificate needs a name".into()));
    }
    leaf(ca, name, CLIENT_UNIT, Vec::new(), days)
}

fn leaf(ca: &Pem, name: &str, unit: &str, hosts: Vec<String>, days: u32) -> Result<Pem, TlsError> {
    let ca_key = KeyPair::from_pem(&ca.key).map_err(|e| TlsError::Make(format!("CA key: {e}")))?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert, ca_key)
        .map_err(|e| TlsError::Make(format!("CA certificate: {e}")))?;
    let server = !hosts.is_empty();
    let mut params = CertificateParams::new(hosts).map_err(made)?;
    params.distinguished_name.push(DnType::CommonName, name);
    params
        .distinguished_name
        .push(DnType::OrganizationalUnitName, unit);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    if server {
        params
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::ServerAuth);
    }
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, days);
    let key = KeyPair::generate().map_err(made)?;
    let cert = params.signed_by(&key, &issuer).map_err(made)?;
    Ok(Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}
