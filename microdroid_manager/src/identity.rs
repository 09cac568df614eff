//! The VM's identity in the guest (docs/identity.md; AOSP packages/modules/Virtualization
//! `microdroid_manager/src/dice.rs` and `vm_secret.rs`; google/open-dice `src/android.c`):
//!
//! 1. [`take_handover`]: the host's DICE handover (CDI_Attest, CDI_Seal, the chain up to
//!    `vm_entry`) is read once from QEMU's fw_cfg, then the fw_cfg driver is removed so that
//!    nothing started later (the payload least of all) can read it again.
//! 2. [`payload_node`]: the payload's DICE node, as AOSP's `dice.rs` derives it: the code hash
//!    covers the APK, extra APKs and APEXes' root hashes; the authority hash their signers'
//!    certificates and keys; the config descriptor names the payload; the mode follows the
//!    debug level; the hidden input is the instance's salt. CDI_Seal depends only on the
//!    authority hash, mode and hidden input, so an update signed by the same keys keeps it.
//! 3. [`VmSecret`]: AOSP's V1 secrets, `HKDF-SHA256(payload CDI_Seal, salt, info)`: the
//!    payload's `getVmInstanceSecret` and the encrypted store's key. The payload never sees a
//!    CDI_Seal.

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use ciborium::Value;
use instance::MicrodroidData;
use sha2::{Digest, Sha512};
use zeroize::Zeroizing;

/// Where the kernel's fw_cfg driver shows the handover.
pub const FW_CFG_SYSFS_BY_NAME: &str = "/sys/firmware/qemu_fw_cfg/by_name";
/// The fw_cfg driver, removed once the handover is read.
pub const FW_CFG_MODULE: &str = "qemu_fw_cfg";
/// The largest handover accepted (a chain of a few certificates is ~2 KiB).
const MAX_HANDOVER_SIZE: u64 = 64 * 1024;

/// The payload node's component name (AOSP's).
pub const PAYLOAD_COMPONENT: &str = "Microdroid payload";

/// AOSP's VmSecret salts (`vm_secret.rs`).
pub const SALT_ENCRYPTED_STORE: [u8; 32] = [
    0xfc, 0x1d, 0x35, 0x7b, 0x96, 0xf3, 0xef, 0x17, 0x78, 0x7d, 0x70, 0xed, 0xea, 0xfe, 0x1d, 0x6f,
    0xb3, 0xf9, 0x40, 0xce, 0xdd, 0x99, 0x40, 0xaa, 0xa7, 0x0e, 0x92, 0x73, 0x90, 0x86, 0x4a, 0x75,
];
pub const SALT_PAYLOAD_SERVICE: [u8; 32] = [
    0x8b, 0x0f, 0xf0, 0xd3, 0xb1, 0x69, 0x2b, 0x95, 0x84, 0x2c, 0x9e, 0x3c, 0x99, 0x56, 0x7a, 0x22,
    0x55, 0xf8, 0x08, 0x23, 0x81, 0x5f, 0xf5, 0x16, 0x20, 0x3e, 0xbe, 0xba, 0xb7, 0xa8, 0x43, 0x92,
];
/// The encrypted store key's info string (AOSP's).
pub const ENCRYPTED_STORE_KEY_INFO: &[u8] = b"encryptedstore_key";

/// The fw_cfg driver being removed on a background thread (`delete_module` waits for RCU grace
/// periods: ~40 ms under TCG, overlapped with the APK's verification). [`FwCfgRemoval::finish`]
/// must succeed before anything of the payload runs; dropping it waits too.
pub struct FwCfgRemoval(Option<std::thread::JoinHandle<Result<()>>>);

impl FwCfgRemoval {
    /// Waits for the removal and checks that it worked.
    pub fn finish(mut self) -> Result<()> {
        self.wait()
    }

    fn wait(&mut self) -> Result<()> {
        match self.0.take() {
            Some(handle) => handle
                .join()
                .map_err(|_| anyhow!("the fw_cfg removal thread panicked"))?,
            None => Ok(()),
        }
    }
}

impl Drop for FwCfgRemoval {
    fn drop(&mut self) {
        let _ = self.wait();
    }
}

/// What the host handed over through fw_cfg.
pub struct HostHandover {
    /// The DICE handover (CDIs and chain).
    pub handover: dice::Handover,
    /// This is the instance's first boot (fw_cfg [`dice::FW_CFG_NEW_INSTANCE_NAME`] present).
    pub new_instance: bool,
}

/// Reads the handover from fw_cfg (`<by_name>/<name>/raw`) and the new-instance flag, and starts
/// removing the fw_cfg driver. Fails if there is no handover or if it does not parse; the
/// removal's own result comes from [`FwCfgRemoval::finish`] (the payload must not be able to
/// read the handover).
pub fn take_handover(by_name: &Path) -> Result<(HostHandover, FwCfgRemoval)> {
    let new_instance = by_name.join(dice::FW_CFG_NEW_INSTANCE_NAME).exists();
    let raw = by_name.join(dice::FW_CFG_HANDOVER_NAME).join("raw");
    let bytes = read_bounded(&raw).with_context(|| {
        format!(
            "reading the DICE handover from {} (the host passes it as fw_cfg {})",
            raw.display(),
            dice::FW_CFG_HANDOVER_NAME
        )
    });
    // Remove the driver whatever happened: nothing later may read fw_cfg.
    let removal = FwCfgRemoval(Some(std::thread::spawn(remove_fw_cfg_driver)));
    let bytes = bytes?;
    let handover = dice::Handover::parse(&bytes).context("parsing the DICE handover")?;
    if handover.chain.is_none() {
        return Err(anyhow!("the DICE handover has no DICE chain"));
    }
    Ok((
        HostHandover {
            handover,
            new_instance,
        },
        removal,
    ))
}

fn read_bounded(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(MAX_HANDOVER_SIZE + 1).read_to_end(&mut bytes)?;
    anyhow::ensure!(
        bytes.len() as u64 <= MAX_HANDOVER_SIZE,
        "the handover is larger than {MAX_HANDOVER_SIZE} bytes"
    );
    Ok(bytes)
}

/// `delete_module("qemu_fw_cfg")`, then checks that its sysfs directory is gone.
pub fn remove_fw_cfg_driver() -> Result<()> {
    let name = std::ffi::CString::new(FW_CFG_MODULE)?;
    match nix::kmod::delete_module(&name, nix::kmod::DeleteModuleFlags::O_NONBLOCK) {
        Ok(()) => {}
        // Not loaded (or built in, which this kernel's config does not do): checked below.
        Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(e).context("removing the qemu_fw_cfg driver"),
    }
    anyhow::ensure!(
        !Path::new(FW_CFG_SYSFS_BY_NAME).exists(),
        "{FW_CFG_SYSFS_BY_NAME} is still there after removing {FW_CFG_MODULE}"
    );
    Ok(())
}

fn map(pairs: Vec<(i64, Value)>) -> Value {
    Value::Map(
        pairs
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect(),
    )
}

/// What the payload runs, as the config descriptor names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadIdentity {
    /// `-71000`: the config file's path.
    ConfigPath(String),
    /// `-71001: {1: name}`: the payload binary's name.
    BinaryName(String),
}

/// The payload node's configuration descriptor (AOSP `dice.rs`, `vm_config.cddl`):
/// `{-70002: "Microdroid payload", -71000: path | -71001: {1: name}, -71002: [subcomponents]}`
/// with one subcomponent per APK, extra APK and APEX, in that order.
pub fn payload_config_descriptor(
    payload: &PayloadIdentity,
    data: &MicrodroidData,
) -> Result<Vec<u8>> {
    let mut pairs = vec![(-70002, Value::from(PAYLOAD_COMPONENT))];
    match payload {
        PayloadIdentity::ConfigPath(path) => pairs.push((-71000, Value::from(path.as_str()))),
        PayloadIdentity::BinaryName(name) => {
            pairs.push((-71001, map(vec![(1, Value::from(name.as_str()))])))
        }
    }
    let mut subcomponents = Vec::new();
    for apk in std::iter::once(&data.apk_data).chain(&data.extra_apks_data) {
        subcomponents.push(map(vec![
            (1, Value::from(format!("apk:{}", apk.package_name))),
            (2, Value::from(apk.version_code)),
            (3, Value::Bytes(apk.root_hash.clone())),
            (4, Value::Bytes(apk.cert_hash.clone())),
        ]));
    }
    for apex in &data.apex_data {
        let name = apex
            .manifest_name
            .clone()
            .unwrap_or_else(|| apex.name.clone());
        subcomponents.push(map(vec![
            (1, Value::from(format!("apex:{name}"))),
            (2, Value::from(apex.manifest_version.unwrap_or(0))),
            (3, Value::Bytes(apex.root_digest.clone())),
            (4, Value::Bytes(Sha512::digest(&apex.public_key).to_vec())),
        ]));
    }
    pairs.push((-71002, Value::Array(subcomponents)));
    let mut out = Vec::new();
    ciborium::into_writer(&map(pairs), &mut out)
        .map_err(|e| anyhow!("encoding the payload config descriptor: {e}"))?;
    Ok(out)
}

/// The payload node's DICE inputs (AOSP `dice.rs`).
pub fn payload_inputs(
    payload: &PayloadIdentity,
    data: &MicrodroidData,
    debuggable: bool,
) -> Result<dice::InputValues> {
    let mut code = Sha512::new();
    let mut authority = Sha512::new();
    for apk in std::iter::once(&data.apk_data).chain(&data.extra_apks_data) {
        code.update(&apk.root_hash);
        authority.update(&apk.cert_hash);
    }
    for apex in &data.apex_data {
        code.update(&apex.root_digest);
        authority.update(&apex.public_key);
    }
    let mut hidden = [0u8; dice::HIDDEN_SIZE];
    anyhow::ensure!(
        data.salt.len() == dice::HIDDEN_SIZE,
        "the instance salt is {} bytes, not {}",
        data.salt.len(),
        dice::HIDDEN_SIZE
    );
    hidden.copy_from_slice(&data.salt);
    Ok(dice::InputValues {
        code_hash: code.finalize().into(),
        code_descriptor: Vec::new(),
        config: dice::Config::Descriptor(payload_config_descriptor(payload, data)?),
        authority_hash: authority.finalize().into(),
        authority_descriptor: Vec::new(),
        mode: if debuggable {
            dice::Mode::Debug
        } else {
            dice::Mode::Normal
        },
        hidden,
    })
}

/// The payload's DICE node: its CDIs and the chain with its certificate appended.
pub struct PayloadDice {
    pub cdis: dice::CdiValues,
    pub chain: Vec<u8>,
}

/// Derives the payload node from the host's handover.
pub fn payload_node(
    handover: &dice::Handover,
    payload: &PayloadIdentity,
    data: &MicrodroidData,
    debuggable: bool,
) -> Result<PayloadDice> {
    let input = payload_inputs(payload, data, debuggable)?;
    let next = dice::android_handover_main_flow(handover, &input)
        .context("deriving the payload's DICE node")?;
    let chain = next
        .chain
        .clone()
        .ok_or_else(|| anyhow!("the derived handover has no chain"))?;
    Ok(PayloadDice {
        cdis: next.cdis.clone(),
        chain,
    })
}

/// AOSP's VmSecret V1: `HKDF-SHA256(IKM = payload CDI_Seal, salt, info)`.
pub struct VmSecret {
    cdi_seal: Zeroizing<[u8; dice::CDI_SIZE]>,
}

impl VmSecret {
    pub fn new(payload_cdis: &dice::CdiValues) -> Self {
        VmSecret {
            cdi_seal: Zeroizing::new(payload_cdis.cdi_seal),
        }
    }

    /// `out.len()` bytes of `HKDF-SHA256(CDI_Seal, salt, info)`.
    pub fn derive(&self, salt: &[u8], info: &[u8], out: &mut [u8]) -> Result<()> {
        hkdf::Hkdf::<sha2::Sha256>::new(Some(salt), &self.cdi_seal[..])
            .expand(info, out)
            .map_err(|_| anyhow!("cannot derive {} bytes from the VM secret", out.len()))
    }

    /// `getVmInstanceSecret(identifier, size)`: the first `size` bytes of the payload service
    /// secret for `identifier`.
    pub fn instance_secret(&self, identifier: &[u8], size: usize) -> Result<Zeroizing<Vec<u8>>> {
        let mut out = Zeroizing::new(vec![0u8; size]);
        self.derive(&SALT_PAYLOAD_SERVICE, identifier, &mut out)?;
        Ok(out)
    }

    /// The encrypted store's key: 64 bytes for AES-256-XTS. HKDF's output is a prefix
    /// sequence, so its first 32 bytes are AOSP's 32-byte HCTR2 key.
    pub fn encrypted_store_key(&self) -> Result<Zeroizing<[u8; 64]>> {
        let mut key = Zeroizing::new([0u8; 64]);
        self.derive(
            &SALT_ENCRYPTED_STORE,
            ENCRYPTED_STORE_KEY_INFO,
            &mut key[..],
        )?;
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use instance::{ApexData, ApkData};

    fn data() -> MicrodroidData {
        MicrodroidData {
            salt: vec![9; 64],
            apk_data: ApkData {
                root_hash: vec![1; 32],
                cert_hash: vec![2; 64],
                package_name: "com.example.app".into(),
                version_code: 7,
            },
            extra_apks_data: vec![],
            apex_data: vec![ApexData {
                name: "com.example.apex".into(),
                manifest_name: Some("com.example.apex".into()),
                manifest_version: Some(3),
                public_key: vec![4; 8],
                root_digest: vec![5; 32],
                last_update_seconds: 0,
                is_factory: false,
            }],
        }
    }

    #[test]
    fn config_descriptor_matches_aosp_bytes_for_a_config_path() {
        // AOSP's unit test payload_metadata_with_path_formats_correctly (without -71002):
        // a2 3a00011171 "Microdroid payload" 3a00011557 "/config_path".
        let bytes =
            payload_config_descriptor(&PayloadIdentity::ConfigPath("/config_path".into()), &data())
                .unwrap();
        let expected_prefix = [
            &[0xa3, 0x3a, 0x00, 0x01, 0x11, 0x71, 0x72][..],
            b"Microdroid payload",
            &[0x3a, 0x00, 0x01, 0x15, 0x57, 0x6c],
            b"/config_path",
            &[0x3a, 0x00, 0x01, 0x15, 0x59, 0x82],
        ]
        .concat();
        assert_eq!(bytes[..expected_prefix.len()], expected_prefix[..]);
    }

    #[test]
    fn seal_follows_signer_mode_and_salt_not_code() {
        let uds = [3u8; 32];
        let root = dice::InputValues {
            code_hash: [0; 64],
            code_descriptor: vec![],
            config: dice::Config::Inline([0; 64]),
            authority_hash: [0; 64],
            authority_descriptor: vec![],
            mode: dice::Mode::Debug,
            hidden: [0; 64],
        };
        let (cdis, chain) = dice::new_chain(&uds, &root);
        let handover = dice::Handover {
            cdis,
            chain: Some(chain),
        };
        let payload = PayloadIdentity::BinaryName("p".into());
        let seal = |d: &MicrodroidData, debuggable: bool| {
            payload_node(&handover, &payload, d, debuggable)
                .unwrap()
                .cdis
                .cdi_seal
        };
        let base = data();
        let mut update = data();
        update.apk_data.version_code = 8;
        update.apk_data.root_hash = vec![6; 32];
        update.apex_data[0].root_digest = vec![7; 32];
        assert_eq!(seal(&base, true), seal(&update, true));
        let mut resigned = data();
        resigned.apk_data.cert_hash = vec![8; 64];
        assert_ne!(seal(&base, true), seal(&resigned, true));
        assert_ne!(seal(&base, true), seal(&base, false));
        let mut other_instance = data();
        other_instance.salt = vec![1; 64];
        assert_ne!(seal(&base, true), seal(&other_instance, true));

        let node = payload_node(&handover, &payload, &base, true).unwrap();
        let entries = dice::verify_chain(&node.chain).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(
            entries[1].component_name.as_deref(),
            Some(PAYLOAD_COMPONENT)
        );
        assert_eq!(entries[1].mode, dice::Mode::Debug);
    }

    #[test]
    fn secrets_are_hkdf_sha256_of_the_payload_seal() {
        let cdis = dice::CdiValues {
            cdi_attest: [1; 32],
            cdi_seal: [2; 32],
        };
        let secret = VmSecret::new(&cdis);
        let a = secret.instance_secret(b"id", 32).unwrap();
        let short = secret.instance_secret(b"id", 5).unwrap();
        assert_eq!(a[..5], short[..]);
        assert_ne!(*a, *secret.instance_secret(b"other", 32).unwrap());
        let key = secret.encrypted_store_key().unwrap();
        let mut aosp = [0u8; 32];
        secret
            .derive(&SALT_ENCRYPTED_STORE, ENCRYPTED_STORE_KEY_INFO, &mut aosp)
            .unwrap();
        assert_eq!(key[..32], aosp);
        // Known answers from an independent implementation: Python's `cryptography`,
        // HKDF(SHA256(), n, salt, info).derive(b"\x02" * 32).
        assert_eq!(
            hex(&a),
            "abbe33293cd9f3b54e57a3357e353af1c57cc8f8057a89eb1dddba62a0e363ec"
        );
        assert_eq!(
            hex(&key[..]),
            "97a86a634400f671e81e54e3ce741d5f8753eb8be4696b8574dc232693f6b167\
             829fb46623cb078fc5a86f3d272311e047431bb2e706738d3367c61be62fa45c"
        );
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}
