//! `sync:`: stat, list, push (SEND) and pull (RECV) of guest files.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use adb::sync::{self as proto, Request, SendItem, Stat, SyncError};

use crate::stream::{StreamReader, StreamWriter};

fn stat_of(m: &fs::Metadata) -> Stat {
    Stat {
        error: 0,
        dev: m.dev(),
        ino: m.ino(),
        mode: m.mode(),
        nlink: m.nlink() as u32,
        uid: m.uid(),
        gid: m.gid(),
        size: m.size(),
        atime: m.atime(),
        mtime: m.mtime(),
        ctime: m.ctime(),
    }
}

fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

pub fn run(mut reader: StreamReader, writer: StreamWriter) {
    if writer.ends.ready().is_err() {
        return;
    }
    if let Err(e) = serve(&mut reader, &writer) {
        eprintln!("adbd: sync: {e}");
        if let SyncError::Io(_) = e {
        } else {
            let _ = writer.send(&proto::encode_fail(&e.to_string()));
        }
    }
}

/// A failure the client is told about with FAIL; the session then ends, as adbd's does.
struct Fail(String);

fn serve(reader: &mut StreamReader, writer: &StreamWriter) -> Result<(), SyncError> {
    while let Some(request) = proto::read_request(reader)? {
        let result = match request {
            Request::Quit => return Ok(()),
            Request::Stat { id, path } => {
                let m = if id == proto::STA2 {
                    fs::metadata(&path)
                } else {
                    fs::symlink_metadata(&path)
                };
                let stat = m
                    .map(|m| stat_of(&m))
                    .unwrap_or_else(|e| Stat::error(errno(&e)));
                let reply = if id == proto::STAT {
                    stat.encode_v1()
                } else {
                    stat.encode_v2(id)
                };
                writer.send(&reply)?;
                Ok(())
            }
            Request::List { id, path } => {
                list(writer, id == proto::LIS2, &path)?;
                Ok(())
            }
            Request::Send { path, mode } => receive_file(reader, writer, &path, mode)?,
            Request::Recv { path } => send_file(writer, &path)?,
        };
        if let Err(Fail(message)) = result {
            writer.send(&proto::encode_fail(&message))?;
            return Ok(());
        }
    }
    Ok(())
}

fn list(writer: &StreamWriter, v2: bool, path: &str) -> io::Result<()> {
    if let Ok(entries) = fs::read_dir(path) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let stat = fs::symlink_metadata(entry.path())
                .map(|m| stat_of(&m))
                .unwrap_or_else(|e| Stat::error(errno(&e)));
            writer.send(&stat.encode_dent(v2, name.as_encoded_bytes()))?;
        }
    }
    writer.send(&proto::encode_list_done(v2))
}

/// SEND: the file's bytes follow in DATA chunks, then DONE with its mtime; OKAY after DONE.
fn receive_file(
    reader: &mut StreamReader,
    writer: &StreamWriter,
    path: &str,
    mode: u32,
) -> Result<Result<(), Fail>, SyncError> {
    let target = Path::new(path);
    let is_link = mode & libc::S_IFMT == libc::S_IFLNK;
    // Group and other get the user's bits, as adbd does.
    let perm = {
        let m = mode & 0o777;
        m | ((m >> 3) & 0o070) | ((m >> 3) & 0o007)
    };
    let mut problem: Option<String> = None;
    if let Some(parent) = target.parent() {
        if !parent.as_os_str().is_empty() {
            if let Err(e) = fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)
            {
                problem = Some(format!("secure_mkdirs failed: {e}"));
            }
        }
    }
    // An existing regular file or symlink is replaced; other files (devices) are written in place.
    if let Ok(m) = fs::symlink_metadata(target) {
        if m.file_type().is_file() || m.file_type().is_symlink() {
            let _ = fs::remove_file(target);
        }
    }
    let mut file = None;
    let mut link_target = Vec::new();
    if problem.is_none() && !is_link {
        match fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(perm)
            .open(target)
        {
            Ok(f) => file = Some(f),
            Err(e) => problem = Some(format!("couldn't create file: {e}")),
        }
    }
    // Every chunk is read, even after a failure, so that the stream stays in step.
    let mtime = loop {
        match proto::read_send_item(reader)? {
            SendItem::Data(data) => {
                if is_link {
                    link_target.extend_from_slice(&data);
                    if link_target.len() > 4096 {
                        problem.get_or_insert_with(|| "symlink target too long".into());
                        link_target.clear();
                    }
                } else if let Some(f) = file.as_mut() {
                    if let Err(e) = f.write_all(&data) {
                        problem.get_or_insert_with(|| format!("write failed: {e}"));
                        file = None;
                    }
                }
            }
            SendItem::Done { mtime } => break mtime,
        }
    };
    if problem.is_none() && is_link {
        let target_text = String::from_utf8_lossy(&link_target).into_owned();
        if let Err(e) = std::os::unix::fs::symlink(&target_text, target) {
            problem = Some(format!("symlink failed: {e}"));
        }
    }
    if let Some(f) = file.take() {
        if let Err(e) = f.set_permissions(fs::Permissions::from_mode(perm)) {
            problem.get_or_insert_with(|| format!("chmod failed: {e}"));
        }
    }
    if problem.is_none() {
        let t = nix::sys::time::TimeSpec::new(i64::from(mtime), 0);
        if let Err(e) = nix::sys::stat::utimensat(
            None,
            target,
            &t,
            &t,
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        ) {
            problem = Some(format!("setting the mtime failed: {e}"));
        }
    }
    match problem {
        Some(p) => {
            let _ = fs::remove_file(target);
            Ok(Err(Fail(p)))
        }
        None => {
            writer.send(&proto::encode_status(proto::OKAY))?;
            Ok(Ok(()))
        }
    }
}

/// RECV: DATA chunks of at most 64 KiB, then DONE.
fn send_file(writer: &StreamWriter, path: &str) -> Result<Result<(), Fail>, SyncError> {
    let mut file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) => return Ok(Err(Fail(format!("open failed: {e}")))),
    };
    let mut buf = vec![0u8; proto::MAX_DATA as usize];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Ok(Err(Fail(format!("read failed: {e}")))),
        };
        writer.send(&proto::encode_data(&buf[..n]))?;
    }
    writer.send(&proto::encode_status(proto::DONE))?;
    Ok(Ok(()))
}
