//! Signature algorithm identifiers of APK Signature Schemes v2/v3/v4.

/// A signature algorithm ID as found in v2/v3 `signatures`/`digests` records and in v4
/// `signing_info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureAlgorithm {
    /// 0x0101: RSASSA-PSS with SHA-256, MGF1 SHA-256, 32-byte salt.
    RsaPssSha256,
    /// 0x0102: RSASSA-PSS with SHA-512, MGF1 SHA-512, 64-byte salt.
    RsaPssSha512,
    /// 0x0103: RSASSA-PKCS1-v1_5 with SHA-256.
    RsaPkcs1Sha256,
    /// 0x0104: RSASSA-PKCS1-v1_5 with SHA-512.
    RsaPkcs1Sha512,
    /// 0x0201: ECDSA with SHA-256 (DER signature).
    EcdsaSha256,
    /// 0x0202: ECDSA with SHA-512 (DER signature).
    EcdsaSha512,
    /// 0x0301: DSA with SHA-256 (recognised, never supported).
    DsaSha256,
    /// 0x0421: RSA PKCS#1 v1.5 over the verity (4K chunk tree) digest (recognised, unsupported).
    VerityRsaPkcs1Sha256,
    /// 0x0423: ECDSA over the verity digest (recognised, unsupported).
    VerityEcdsaSha256,
    /// 0x0425: DSA over the verity digest (recognised, unsupported).
    VerityDsaSha256,
    /// Any other ID (ignored by verification, like AOSP does).
    Unknown(u32),
}

/// The content digest algorithm a signature algorithm uses over the APK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ContentDigestAlgorithm {
    /// 1 MiB chunks, SHA-256.
    ChunkedSha256,
    /// 4 KiB Merkle tree, SHA-256 (not computed by this crate).
    VerityChunkedSha256,
    /// 1 MiB chunks, SHA-512.
    ChunkedSha512,
}

impl SignatureAlgorithm {
    /// Decodes a wire ID.
    pub fn from_id(id: u32) -> Self {
        match id {
            0x0101 => Self::RsaPssSha256,
            0x0102 => Self::RsaPssSha512,
            0x0103 => Self::RsaPkcs1Sha256,
            0x0104 => Self::RsaPkcs1Sha512,
            0x0201 => Self::EcdsaSha256,
            0x0202 => Self::EcdsaSha512,
            0x0301 => Self::DsaSha256,
            0x0421 => Self::VerityRsaPkcs1Sha256,
            0x0423 => Self::VerityEcdsaSha256,
            0x0425 => Self::VerityDsaSha256,
            other => Self::Unknown(other),
        }
    }

    /// The wire ID.
    pub fn id(self) -> u32 {
        match self {
            Self::RsaPssSha256 => 0x0101,
            Self::RsaPssSha512 => 0x0102,
            Self::RsaPkcs1Sha256 => 0x0103,
            Self::RsaPkcs1Sha512 => 0x0104,
            Self::EcdsaSha256 => 0x0201,
            Self::EcdsaSha512 => 0x0202,
            Self::DsaSha256 => 0x0301,
            Self::VerityRsaPkcs1Sha256 => 0x0421,
            Self::VerityEcdsaSha256 => 0x0423,
            Self::VerityDsaSha256 => 0x0425,
            Self::Unknown(id) => id,
        }
    }

    /// Whether this crate can verify and produce signatures with this algorithm.
    pub fn is_supported(self) -> bool {
        matches!(
            self,
            Self::RsaPssSha256
                | Self::RsaPssSha512
                | Self::RsaPkcs1Sha256
                | Self::RsaPkcs1Sha512
                | Self::EcdsaSha256
                | Self::EcdsaSha512
        )
    }

    /// The content digest algorithm, or `None` for unknown IDs.
    pub fn content_digest_algorithm(self) -> Option<ContentDigestAlgorithm> {
        match self {
            Self::RsaPssSha256 | Self::RsaPkcs1Sha256 | Self::EcdsaSha256 | Self::DsaSha256 => {
                Some(ContentDigestAlgorithm::ChunkedSha256)
            }
            Self::RsaPssSha512 | Self::RsaPkcs1Sha512 | Self::EcdsaSha512 => {
                Some(ContentDigestAlgorithm::ChunkedSha512)
            }
            Self::VerityRsaPkcs1Sha256 | Self::VerityEcdsaSha256 | Self::VerityDsaSha256 => {
                Some(ContentDigestAlgorithm::VerityChunkedSha256)
            }
            Self::Unknown(_) => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        for id in [
            0x0101, 0x0102, 0x0103, 0x0104, 0x0201, 0x0202, 0x0301, 0x0421, 0x0423, 0x0425, 0x9999,
        ] {
            assert_eq!(SignatureAlgorithm::from_id(id).id(), id);
        }
    }

    #[test]
    fn strength_order() {
        assert!(ContentDigestAlgorithm::ChunkedSha512 > ContentDigestAlgorithm::ChunkedSha256);
        assert!(!SignatureAlgorithm::DsaSha256.is_supported());
        assert!(SignatureAlgorithm::EcdsaSha256.is_supported());
    }
}
