//! Building APEXes on the host, as `apexer` does for an erofs payload: the directory becomes an
//! erofs image (mkfs.erofs, reproducible flags), which gets an AVB hashtree footer signed with
//! the developer's key; the manifest, the key's public half and the image go into a zip with
//! stored entries, the image page-aligned so that the guest can map it with a loop device.

use std::fs;
use std::path::Path;
use std::process::Command;

use prost::Message;
use sha2::{Digest, Sha256};

use crate::manifest::{check_name, ApexManifest};
use crate::{Error, Result, MANIFEST_ENTRY, PAYLOAD_ENTRY, PUBKEY_ENTRY};

/// The erofs UUID of every payload image (fixed, for reproducible APEXes).
pub const EROFS_UUID: &str = "a9e5c6d4-0e3b-4c2f-9d1a-5e7f8a6b4c3d";
/// Alignment of `apex_payload.img` in the zip.
pub const PAYLOAD_ALIGNMENT: u64 = 4096;

fn build_err(what: impl std::fmt::Display) -> Error {
    Error::Build(what.to_string())
}

/// The hashtree salt of an APEX: fixed per name, so that an APEX rebuilt from the same inputs
/// has the same bytes.
pub fn salt_for(name: &str) -> [u8; 32] {
    Sha256::digest(format!("apex-{name}").as_bytes()).into()
}

/// Copies `dir` into `staging` with fixed modes (0755 for directories and for files that are
/// executable by their owner, 0644 for the rest), so that the payload user can read and run
/// what the APEX holds whatever the developer's umask was.
fn stage(dir: &Path, staging: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::create_dir_all(staging)?;
    fs::set_permissions(staging, fs::Permissions::from_mode(0o755))?;
    let mut entries = fs::read_dir(dir)?.collect::<std::io::Result<Vec<_>>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let target = staging.join(entry.file_name());
        let meta = fs::metadata(&path)?;
        if meta.is_dir() {
            stage(&path, &target)?;
        } else if meta.is_file() {
            fs::copy(&path, &target)?;
            let mode = if meta.permissions().mode() & 0o100 != 0 {
                0o755
            } else {
                0o644
            };
            fs::set_permissions(&target, fs::Permissions::from_mode(mode))?;
        } else {
            return Err(build_err(format!(
                "{} is neither a file nor a directory",
                path.display()
            )));
        }
    }
    Ok(())
}

/// Builds `apex_payload.img` from `dir`: erofs, then the hashtree footer (descriptor partition
/// name = the APEX name) signed with `key`. Returns the image's bytes and what the footer holds.
pub fn build_payload_image(
    dir: &Path,
    name: &str,
    key: &avb::SigningKey,
) -> Result<(Vec<u8>, avb::HashtreeFooterInfo)> {
    check_name(name)?;
    if !dir.is_dir() {
        return Err(build_err(format!("{} is not a directory", dir.display())));
    }
    let work = tempfile::tempdir()?;
    let staging = work.path().join("root");
    stage(dir, &staging)?;
    let image = work.path().join(PAYLOAD_ENTRY);
    let status = Command::new("mkfs.erofs")
        .args(["--quiet", "-T0", "-U", EROFS_UUID, "--all-root", "-x-1"])
        .arg(&image)
        .arg(&staging)
        .env_remove("SOURCE_DATE_EPOCH")
        .status()
        .map_err(|e| build_err(format!("running mkfs.erofs (package erofs-utils): {e}")))?;
    if !status.success() {
        return Err(build_err(format!("mkfs.erofs failed with {status}")));
    }
    let salt = salt_for(name);
    let info = avb::add_hashtree_footer(
        &image,
        &avb::HashtreeFooterOptions::new(name, &salt, Some(key)),
    )
    .map_err(|e| build_err(format!("adding the hashtree footer: {e}")))?;
    Ok((fs::read(&image)?, info))
}

/// The APEX zip: `apex_manifest.pb`, `apex_pubkey` and `apex_payload.img` (page-aligned), all
/// stored. `public_key` is normally the payload's signing key; tests pass another to make an
/// APEX the guest must refuse.
pub fn build_apex_zip(
    manifest: &ApexManifest,
    public_key: &[u8],
    payload_image: &[u8],
) -> Result<Vec<u8>> {
    use ziparchive::write::{build_zip, ZipEntry};
    check_name(&manifest.name)?;
    let mut payload = ZipEntry::new(PAYLOAD_ENTRY, payload_image.to_vec());
    payload.align = Some(PAYLOAD_ALIGNMENT);
    let entries = [
        ZipEntry::new(MANIFEST_ENTRY, manifest.encode_to_vec()),
        ZipEntry::new(PUBKEY_ENTRY, public_key.to_vec()),
        payload,
    ];
    build_zip(&entries).map_err(|e| build_err(format!("writing the zip: {e}")))
}

/// Builds the APEX `out` from `dir`, named `name` at `version`, signed with `key`.
pub fn build_apex(
    dir: &Path,
    name: &str,
    version: i64,
    key: &avb::SigningKey,
    out: &Path,
) -> Result<ApexManifest> {
    let manifest = ApexManifest {
        name: name.to_owned(),
        version,
        version_name: version.to_string(),
        ..ApexManifest::default()
    };
    if version < 0 {
        return Err(Error::InvalidVersion(version));
    }
    let (image, _) = build_payload_image(dir, name, key)?;
    let public_key = key
        .public_key()
        .map_err(|e| build_err(format!("the signing key: {e}")))?
        .to_avb_bytes();
    fs::write(out, build_apex_zip(&manifest, &public_key, &image)?)?;
    Ok(manifest)
}
