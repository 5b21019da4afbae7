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

/// A revocation list (PEM) of `ca` revoking the certificates `revoked` (PEM), valid `days`;
/// `number` increases with each list the CA issues. For `--tls-crl` in tests and small
/// clusters; a production CA issues its own.
pub fn make_crl(ca: &Pem, revoked: &[&str], number: u64, days: u32) -> Result<String, TlsError> {
    use rcgen::{
        CertificateRevocationListParams, KeyIdMethod, RevocationReason, RevokedCertParams,
        SerialNumber,
    };
    use x509_parser::prelude::{FromDer, X509Certificate};
    let ca_key = KeyPair::from_pem(&ca.key).map_err(|e| TlsError::Make(format!("CA key: {e}")))?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert, ca_key)
        .map_err(|e| TlsError::Make(format!("CA certificate: {e}")))?;
    let now = time::OffsetDateTime::now_utc();
    let mut revoked_certs = Vec::with_capacity(revoked.len());
    for pem in revoked {
        let der = crate::certs_of(pem.as_bytes())
            .map_err(|e| TlsError::Make(format!("a revoked certificate: {e}")))?;
        let Some(leaf) = der.first() else {
            return Err(TlsError::Make("a revoked certificate holds none".into()));
        };
        let (_, cert) = X509Certificate::from_der(leaf.as_ref())
            .map_err(|e| TlsError::Make(format!("a revoked certificate: {e}")))?;
        revoked_certs.push(RevokedCertParams {
            serial_number: SerialNumber::from_slice(cert.tbs_certificate.raw_serial()),
            revocation_time: now - time::Duration::minutes(1),
            reason_code: Some(RevocationReason::KeyCompromise),
            invalidity_date: None,
        });
    }
    let params = CertificateRevocationListParams {
        this_update: now - time::Duration::minutes(1),
        next_update: now + time::Duration::days(i64::from(days.max(1))),
        crl_number: SerialNumber::from(number),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: KeyIdMethod::Sha256,
    };
    params
        .signed_by(&issuer)
        .and_then(|crl| crl.pem())
        .map_err(made)
}
