//! The parcel subset AIDL needs over RPC binder (`Parcel.cpp`, RPC branch).
//!
//! Every item is little-endian and zero-padded to 4 bytes. The interface token of an RPC
//! parcel is a bare String16 (no strict-mode / work-source / 'SYST' words).

use std::os::fd::OwnedFd;
use std::sync::Arc;

use crate::error::ParcelError;
use crate::session::SpIBinder;
use crate::status::{ExceptionCode, Status};
use crate::wire::Address;

/// Binder object type word: null binder.
pub const TYPE_BINDER_NULL: i32 = 0;
/// Binder object type word: binder with an address.
pub const TYPE_BINDER: i32 = 1;
/// Object type word of a file descriptor (`TYPE_NATIVE_FILE_DESCRIPTOR`), followed by its index
/// among the fds sent with the command (SCM_RIGHTS).
pub const TYPE_NATIVE_FILE_DESCRIPTOR: i32 = 2;

/// Stability levels (`Stability::Level`).
pub mod stability {
    /// Not declared.
    pub const UNDECLARED: i32 = 0;
    /// Vendor partition.
    pub const VENDOR: i32 = 0x03;
    /// System partition; what platform builds mark their binders with.
    pub const SYSTEM: i32 = 0x0c;
    /// VINTF stable.
    pub const VINTF: i32 = 0x3f;
}

fn pad4(len: usize) -> usize {
    (4 - (len % 4)) % 4
}

/// An object written into a parcel that the session resolves when it sends the parcel: a
/// binder gets its wire address (patched in at `offset + 4`), a file descriptor travels as
/// SCM_RIGHTS.
#[derive(Clone)]
pub enum OutObject {
    /// A binder (local or a proxy of the same session).
    Binder(SpIBinder),
    /// A file descriptor; its index among the parcel's fds is already written.
    Fd(Arc<OwnedFd>),
}

impl std::fmt::Debug for OutObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OutObject::Binder(b) => write!(f, "Binder({b:?})"),
            OutObject::Fd(fd) => write!(f, "Fd({fd:?})"),
        }
    }
}

impl PartialEq for OutObject {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (OutObject::Binder(a), OutObject::Binder(b)) => a == b,
            (OutObject::Fd(a), OutObject::Fd(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for OutObject {}

/// A parcel being written.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Parcel {
    data: Vec<u8>,
    binder_offsets: Vec<u32>,
    /// Objects the session resolves at send time, by offset of their type word.
    objects: Vec<(u32, OutObject)>,
    fd_offsets: Vec<u32>,
}

impl Parcel {
    /// Empty parcel.
    pub fn new() -> Self {
        Self::default()
    }

    /// The parcel data bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Offsets of the (non-null) binder objects written, for the v2 object table.
    pub fn binder_offsets(&self) -> &[u32] {
        &self.binder_offsets
    }

    /// Offsets of the file descriptor objects written (listed in the object table at v1+).
    pub fn fd_offsets(&self) -> &[u32] {
        &self.fd_offsets
    }

    /// Objects the session must resolve when sending (binders by value, fds).
    pub fn objects(&self) -> &[(u32, OutObject)] {
        &self.objects
    }

    /// The data with each binder object's address replaced by `address_of` (the session's
    /// wire address for it).
    pub(crate) fn patched_data(
        &self,
        mut address_of: impl FnMut(&SpIBinder) -> Result<Address, crate::error::Error>,
    ) -> Result<Vec<u8>, crate::error::Error> {
        let mut data = self.data.clone();
        for (offset, object) in &self.objects {
            if let OutObject::Binder(b) = object {
                let address = address_of(b)?;
                let at = *offset as usize + 4;
                data[at..at + 8].copy_from_slice(&address.0.to_le_bytes());
            }
        }
        Ok(data)
    }

    /// The file descriptors to send with this parcel, in index order.
    pub(crate) fn fds(&self) -> Vec<Arc<OwnedFd>> {
        self.objects
            .iter()
            .filter_map(|(_, o)| match o {
                OutObject::Fd(fd) => Some(fd.clone()),
                OutObject::Binder(_) => None,
            })
            .collect()
    }

    /// Data size in bytes.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Raw bytes followed by zero padding to 4.
    fn write_padded(&mut self, bytes: &[u8]) {
        self.data.extend_from_slice(bytes);
        self.data.resize(self.data.len() + pad4(bytes.len()), 0);
    }

    /// `writeInt32`.
    pub fn write_i32(&mut self, v: i32) {
        self.data.extend_from_slice(&v.to_le_bytes());
    }

    /// `writeUint32`.
    pub fn write_u32(&mut self, v: u32) {
        self.data.extend_from_slice(&v.to_le_bytes());
    }

    /// `writeInt64` (4-byte aligned only).
    pub fn write_i64(&mut self, v: i64) {
        self.data.extend_from_slice(&v.to_le_bytes());
    }

    /// `writeBool`: i32 0/1.
    pub fn write_bool(&mut self, v: bool) {
        self.write_i32(i32::from(v));
    }

    /// `writeString16` / `writeUtf8AsUtf16`: length in UTF-16 units (-1 = null), units, a
    /// 0 terminator, zero padding.
    pub fn write_string16(&mut self, s: Option<&str>) {
        let Some(s) = s else {
            self.write_i32(-1);
            return;
        };
        let units: Vec<u16> = s.encode_utf16().collect();
        // Strings longer than i32::MAX units cannot be built from a command body anyway;
        // saturate rather than wrap.
        self.write_i32(i32::try_from(units.len()).unwrap_or(i32::MAX));
        let mut bytes = Vec::with_capacity(units.len() * 2 + 2);
        for u in units {
            bytes.extend_from_slice(&u.to_le_bytes());
        }
        bytes.extend_from_slice(&[0, 0]);
        self.write_padded(&bytes);
    }

    /// Non-null string.
    pub fn write_str(&mut self, s: &str) {
        self.write_string16(Some(s));
    }

    /// `byte[]`: length (-1 = null), bytes, zero padding.
    pub fn write_byte_array(&mut self, b: Option<&[u8]>) {
        let Some(b) = b else {
            self.write_i32(-1);
            return;
        };
        self.write_i32(i32::try_from(b.len()).unwrap_or(i32::MAX));
        self.write_padded(b);
    }

    /// `writeInterfaceToken` on an RPC parcel: the bare String16 descriptor.
    pub fn write_interface_token(&mut self, descriptor: &str) {
        self.write_str(descriptor);
    }

    /// `writeStrongBinder`: type, address (if non-null), stability.
    pub fn write_strong_binder(&mut self, binder: Option<(Address, i32)>) {
        match binder {
            None => {
                self.write_i32(TYPE_BINDER_NULL);
                self.write_i32(stability::UNDECLARED);
            }
            Some((address, stab)) => {
                self.binder_offsets
                    .push(u32::try_from(self.data.len()).unwrap_or(u32::MAX));
                self.write_i32(TYPE_BINDER);
                self.data.extend_from_slice(&address.0.to_le_bytes());
                self.write_i32(stab);
            }
        }
    }

    /// `writeStrongBinder` of a binder object (a local binder or a proxy of the session this
    /// parcel is sent on); the session fills in its address when it sends the parcel.
    pub fn write_binder(&mut self, binder: Option<&SpIBinder>) {
        let Some(binder) = binder else {
            self.write_strong_binder(None);
            return;
        };
        let offset = u32::try_from(self.data.len()).unwrap_or(u32::MAX);
        self.objects
            .push((offset, OutObject::Binder(binder.clone())));
        self.write_strong_binder(Some((Address::ZERO, binder.stability())));
    }

    /// A file descriptor object: type word 2 and the fd's index among this parcel's fds. It
    /// travels as SCM_RIGHTS, so only on Unix sockets of sessions with fd mode UNIX.
    pub fn write_fd(&mut self, fd: OwnedFd) {
        let index = self
            .objects
            .iter()
            .filter(|(_, o)| matches!(o, OutObject::Fd(_)))
            .count();
        let offset = u32::try_from(self.data.len()).unwrap_or(u32::MAX);
        self.fd_offsets.push(offset);
        self.objects.push((offset, OutObject::Fd(Arc::new(fd))));
        self.write_i32(TYPE_NATIVE_FILE_DESCRIPTOR);
        self.write_i32(i32::try_from(index).unwrap_or(i32::MAX));
    }

    /// `ParcelFileDescriptor` (`writeNullableParcelable`): `i32 0` for null, else `i32 1`,
    /// `i32 0` (no comm channel) and the fd object.
    pub fn write_pfd(&mut self, fd: Option<OwnedFd>) {
        match fd {
            None => self.write_i32(0),
            Some(fd) => {
                self.write_i32(1);
                self.write_i32(0);
                self.write_fd(fd);
            }
        }
    }

    /// `Status::writeToParcel`. A transport-failure status writes nothing (the caller puts
    /// its code in the reply header).
    pub fn write_status(&mut self, status: &Status) {
        let ex = status.exception_code();
        if ex == ExceptionCode::TRANSACTION_FAILED {
            return;
        }
        self.write_i32(ex.0);
        if ex == ExceptionCode::NONE {
            return;
        }
        self.write_str(status.message());
        self.write_i32(0); // empty remote stack trace header
        if ex == ExceptionCode::SERVICE_SPECIFIC {
            self.write_i32(status.service_specific_error());
        } else if ex == ExceptionCode::PARCELABLE {
            self.write_i32(0);
        }
    }

    /// Appends the bytes of a structured parcelable: `i32 1`, `i32 size` (including the size
    /// word itself), then the fields written by `f`.
    pub fn write_parcelable(&mut self, f: impl FnOnce(&mut Parcel)) {
        self.write_i32(1);
        let start = self.data.len();
        self.write_i32(0);
        f(self);
        let size = i32::try_from(self.data.len() - start).unwrap_or(i32::MAX);
        self.data[start..start + 4].copy_from_slice(&size.to_le_bytes());
    }
}

/// A received strong binder reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BinderRef {
    /// Wire address.
    pub address: Address,
    /// Stability level the sender marked it with.
    pub stability: i32,
}

/// What a reader needs to turn wire objects into binders and file descriptors: the session
/// the parcel arrived on and the fds that came with it.
pub trait ObjectResolver {
    /// The binder at `address` (a local node, or a proxy with its reference counted).
    fn resolve_binder(&self, address: Address, stability: i32) -> Result<SpIBinder, ParcelError>;
    /// Takes the fd with this index (each can be taken once).
    fn take_fd(&self, index: i32) -> Result<OwnedFd, ParcelError>;
}

/// A parcel being read (untrusted bytes).
#[derive(Clone)]
pub struct ParcelReader<'a> {
    data: &'a [u8],
    pos: usize,
    objects: &'a [u32],
    check_binder_table: bool,
    resolver: Option<&'a dyn ObjectResolver>,
}

impl std::fmt::Debug for ParcelReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParcelReader")
            .field("len", &self.data.len())
            .field("pos", &self.pos)
            .field("objects", &self.objects)
            .finish_non_exhaustive()
    }
}

impl<'a> ParcelReader<'a> {
    /// Reader over parcel data, without an object table (v0/v1 semantics).
    pub fn new(data: &'a [u8]) -> Self {
        ParcelReader {
            data,
            pos: 0,
            objects: &[],
            check_binder_table: false,
            resolver: None,
        }
    }

    /// Reader of a parcel received on a session: binders and fds resolve through `resolver`.
    pub fn with_resolver(
        data: &'a [u8],
        objects: &'a [u32],
        binders_in_table: bool,
        resolver: &'a dyn ObjectResolver,
    ) -> Self {
        ParcelReader {
            data,
            pos: 0,
            objects,
            check_binder_table: binders_in_table,
            resolver: Some(resolver),
        }
    }

    /// Reader over parcel data with its object table. With `binders_in_table` (protocol v2)
    /// every non-null binder must be listed.
    pub fn with_objects(data: &'a [u8], objects: &'a [u32], binders_in_table: bool) -> Self {
        ParcelReader {
            data,
            pos: 0,
            objects,
            check_binder_table: binders_in_table,
            resolver: None,
        }
    }

    /// Current read position.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ParcelError> {
        let avail = self.remaining();
        if n > avail {
            return Err(ParcelError::NotEnoughData {
                offset: self.pos,
                needed: n,
                available: avail,
            });
        }
        let start = self.pos;
        self.pos += n;
        Ok(&self.data[start..start + n])
    }

    /// Takes `n` bytes plus their padding to 4.
    fn take_padded(&mut self, n: usize) -> Result<&'a [u8], ParcelError> {
        // Saturating: a length that large fails as NotEnoughData in `take`.
        let total = n.saturating_add(pad4(n));
        let b = self.take(total)?;
        Ok(&b[..n])
    }

    fn seek_within(
        &mut self,
        start: usize,
        size: i32,
        avail: usize,
        err: fn(i32) -> ParcelError,
    ) -> Result<(), ParcelError> {
        let sz = usize::try_from(size).map_err(|_| err(size))?;
        if sz > avail {
            return Err(err(size));
        }
        self.pos = start + sz;
        Ok(())
    }

    /// `readInt32`.
    pub fn read_i32(&mut self) -> Result<i32, ParcelError> {
        let b = self.take(4)?;
        Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// `readUint32`.
    pub fn read_u32(&mut self) -> Result<u32, ParcelError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// `readInt64`.
    pub fn read_i64(&mut self) -> Result<i64, ParcelError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_le_bytes(a))
    }

    /// `readBool`: any non-zero i32 is true.
    pub fn read_bool(&mut self) -> Result<bool, ParcelError> {
        Ok(self.read_i32()? != 0)
    }

    fn read_len(&mut self) -> Result<Option<usize>, ParcelError> {
        let len = self.read_i32()?;
        match len {
            -1 => Ok(None),
            l => usize::try_from(l)
                .map(Some)
                .map_err(|_| ParcelError::BadLength(l)),
        }
    }

    /// Nullable String16 as UTF-8.
    pub fn read_string16(&mut self) -> Result<Option<String>, ParcelError> {
        let Some(units) = self.read_len()? else {
            return Ok(None);
        };
        let nbytes =
            units
                .checked_mul(2)
                .and_then(|n| n.checked_add(2))
                .ok_or(ParcelError::BadLength(
                    i32::try_from(units).unwrap_or(i32::MAX),
                ))?;
        let b = self.take_padded(nbytes)?;
        let (text, term) = b.split_at(nbytes - 2);
        if term != [0, 0] {
            return Err(ParcelError::StringNotTerminated);
        }
        let u16s = text
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]));
        char::decode_utf16(u16s)
            .collect::<Result<String, _>>()
            .map(Some)
            .map_err(|_| ParcelError::InvalidUtf16)
    }

    /// Non-null String16.
    pub fn read_string(&mut self) -> Result<String, ParcelError> {
        self.read_string16()?.ok_or(ParcelError::UnexpectedNull)
    }

    /// Nullable `byte[]`.
    pub fn read_byte_array(&mut self) -> Result<Option<Vec<u8>>, ParcelError> {
        let Some(n) = self.read_len()? else {
            return Ok(None);
        };
        Ok(Some(self.take_padded(n)?.to_vec()))
    }

    /// `enforceInterface` on an RPC parcel: a bare String16 equal to `descriptor`.
    pub fn enforce_interface(&mut self, descriptor: &str) -> Result<(), ParcelError> {
        let token = self.read_string16()?;
        if token.as_deref() == Some(descriptor) {
            Ok(())
        } else {
            Err(ParcelError::InterfaceMismatch {
                expected: descriptor.to_string(),
                actual: token,
            })
        }
    }

    /// `readStrongBinder`: None for a null binder.
    pub fn read_strong_binder(&mut self) -> Result<Option<BinderRef>, ParcelError> {
        let start = self.pos;
        let ty = self.read_i32()?;
        let address = match ty {
            TYPE_BINDER_NULL => None,
            TYPE_BINDER => {
                if self.check_binder_table && !self.objects.iter().any(|&o| o as usize == start) {
                    return Err(ParcelError::BinderNotInObjectTable(start));
                }
                let b = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                Some(Address(u64::from_le_bytes(a)))
            }
            other => return Err(ParcelError::BadBinderType(other)),
        };
        let stability = self.read_i32()?;
        Ok(address.map(|address| BinderRef { address, stability }))
    }

    /// `readStrongBinder` into a binder object of the session the parcel came on.
    pub fn read_binder(&mut self) -> Result<Option<SpIBinder>, ParcelError> {
        let Some(r) = self.read_strong_binder()? else {
            return Ok(None);
        };
        let resolver = self.resolver.ok_or(ParcelError::NoSession)?;
        resolver.resolve_binder(r.address, r.stability).map(Some)
    }

    /// A non-null binder (AIDL's non-`@nullable` interface arguments).
    pub fn read_required_binder(&mut self) -> Result<SpIBinder, ParcelError> {
        self.read_binder()?.ok_or(ParcelError::UnexpectedNull)
    }

    /// A file descriptor object; it must be listed in the object table.
    pub fn read_fd(&mut self) -> Result<OwnedFd, ParcelError> {
        let start = self.pos;
        let ty = self.read_i32()?;
        if ty != TYPE_NATIVE_FILE_DESCRIPTOR {
            return Err(ParcelError::BadObjectType(ty));
        }
        if !self.objects.iter().any(|&o| o as usize == start) {
            return Err(ParcelError::FdNotInObjectTable(start));
        }
        let index = self.read_i32()?;
        let resolver = self.resolver.ok_or(ParcelError::NoSession)?;
        resolver.take_fd(index)
    }

    /// `ParcelFileDescriptor` (nullable): see [`Parcel::write_pfd`].
    pub fn read_pfd(&mut self) -> Result<Option<OwnedFd>, ParcelError> {
        if self.read_i32()? == 0 {
            return Ok(None);
        }
        let has_comm = self.read_i32()?;
        if has_comm != 0 {
            // A comm channel (a second fd for close/error reports) is not used over RPC.
            return Err(ParcelError::BadValue(has_comm));
        }
        self.read_fd().map(Some)
    }

    /// A non-null `ParcelFileDescriptor`.
    pub fn read_required_pfd(&mut self) -> Result<OwnedFd, ParcelError> {
        self.read_pfd()?.ok_or(ParcelError::UnexpectedNull)
    }

    /// `Status::readFromParcel`, including the fat reply header and stack-trace skips.
    pub fn read_status(&mut self) -> Result<Status, ParcelError> {
        let mut ex = ExceptionCode(self.read_i32()?);
        if ex == ExceptionCode::HAS_REPLY_HEADER {
            let start = self.pos;
            let avail = self.remaining();
            let size = self.read_i32()?;
            self.seek_within(start, size, avail, ParcelError::BadStatusHeader)?;
            ex = ExceptionCode::NONE;
        }
        if ex == ExceptionCode::NONE {
            return Ok(Status::ok());
        }
        let message = self.read_string16()?.unwrap_or_default();
        let start = self.pos;
        let avail = self.remaining();
        let trace = self.read_i32()?;
        if trace != 0 {
            self.seek_within(start, trace, avail, ParcelError::BadStatusHeader)?;
        }
        let mut code = 0;
        if ex == ExceptionCode::SERVICE_SPECIFIC {
            code = self.read_i32()?;
        } else if ex == ExceptionCode::PARCELABLE {
            let start = self.pos;
            let avail = self.remaining();
            let size = self.read_i32()?;
            self.seek_within(start, size, avail, ParcelError::BadStatusHeader)?;
        }
        Ok(Status::from_parts(ex, message, code))
    }

    /// Reads a non-null structured parcelable: `i32 1`, `i32 size` (>= 4, including itself),
    /// fields read by `f` from a reader bounded to the parcelable; trailing fields are skipped.
    pub fn read_parcelable<T>(
        &mut self,
        f: impl FnOnce(&mut ParcelReader<'a>) -> Result<T, ParcelError>,
    ) -> Result<T, ParcelError> {
        if self.read_i32()? == 0 {
            return Err(ParcelError::UnexpectedNull);
        }
        let start = self.pos;
        let avail = self.remaining();
        let size = self.read_i32()?;
        let sz = usize::try_from(size).map_err(|_| ParcelError::BadParcelableSize(size))?;
        if sz < 4 || sz > avail {
            return Err(ParcelError::BadParcelableSize(size));
        }
        let mut inner = ParcelReader {
            data: &self.data[..start + sz],
            pos: self.pos,
            objects: self.objects,
            check_binder_table: self.check_binder_table,
            resolver: self.resolver,
        };
        let v = f(&mut inner)?;
        self.pos = start + sz;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    // Golden vectors from AOSP frameworks/native
    // libs/binder/tests/binderRpcWireProtocolTest.cpp (kCurrentRepr).
    type Case = (Box<dyn Fn(&mut Parcel)>, &'static str);

    #[test]
    fn aosp_golden_vectors() {
        let cases: Vec<Case> = vec![
            (Box::new(|p| p.write_i32(-1)), "ffffffff"),
            (Box::new(|p| p.write_i64(17)), "1100000000000000"),
            (
                Box::new(|p| p.write_str("baba")),
                "04000000620061006200610000000000",
            ),
            (
                Box::new(|p| p.write_str("abab")),
                "04000000610062006100620000000000",
            ),
            (Box::new(|p| p.write_string16(None)), "ffffffff"),
            (Box::new(|p| p.write_str("")), "0000000000000000"),
            (
                Box::new(|p| p.write_byte_array(Some(&[0, 17, 255]))),
                "030000000011ff00",
            ),
            (
                Box::new(|p| p.write_byte_array(Some(&[0xff, 0, 17]))),
                "03000000ff001100",
            ),
            (Box::new(|p| p.write_bool(true)), "01000000"),
            (
                Box::new(|p| p.write_strong_binder(None)),
                "0000000000000000",
            ),
            (Box::new(|p| p.write_status(&Status::ok())), "00000000"),
            (
                Box::new(|p| p.write_status(&Status::exception(ExceptionCode(7), ":D"))),
                "07000000020000003a0044000000000000000000",
            ),
            (
                Box::new(|p| p.write_status(&Status::service_specific(8, ":/"))),
                "f8ffffff020000003a002f00000000000000000008000000",
            ),
            (
                Box::new(|p| p.write_interface_token("tok")),
                "0300000074006f006b000000",
            ),
        ];
        for (i, (f, want)) in cases.iter().enumerate() {
            let mut p = Parcel::new();
            f(&mut p);
            assert_eq!(hex(p.data()), *want, "case {i}");
        }
    }

    #[test]
    fn roundtrip_strings_and_arrays() {
        let mut p = Parcel::new();
        p.write_str("héllo ✓ 😀");
        p.write_string16(None);
        p.write_byte_array(Some(b"abcde"));
        p.write_byte_array(None);
        p.write_i64(-5);
        let mut r = ParcelReader::new(p.data());
        assert_eq!(r.read_string16(), Ok(Some("héllo ✓ 😀".to_string())));
        assert_eq!(r.read_string16(), Ok(None));
        assert_eq!(r.read_byte_array(), Ok(Some(b"abcde".to_vec())));
        assert_eq!(r.read_byte_array(), Ok(None));
        assert_eq!(r.read_i64(), Ok(-5));
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn status_roundtrip() {
        for s in [
            Status::ok(),
            Status::exception(ExceptionCode::ILLEGAL_STATE, "bad state"),
            Status::service_specific(-1, "x"),
            Status::exception(ExceptionCode::PARCELABLE, ""),
        ] {
            let mut p = Parcel::new();
            p.write_status(&s);
            let mut r = ParcelReader::new(p.data());
            let parcelable = s.exception_code() == ExceptionCode::PARCELABLE;
            assert_eq!(r.read_status(), Ok(s));
            // libbinder seeks to header_start + header_size, i.e. back onto a 0 size word.
            assert_eq!(r.remaining(), if parcelable { 4 } else { 0 });
        }
        // Status::writeToParcel (AOSP frameworks/native libs/binder/Status.cpp): service-specific
        // (-1, "x").
        let mut p = Parcel::new();
        p.write_status(&Status::service_specific(-1, "x"));
        assert_eq!(hex(p.data()), "f8ffffff010000007800000000000000ffffffff");
    }

    #[test]
    fn status_fat_header_skipped() {
        let mut p = Parcel::new();
        p.write_i32(ExceptionCode::HAS_REPLY_HEADER.0);
        p.write_i32(8); // header size including itself
        p.write_i32(0x1234);
        p.write_i32(77);
        let mut r = ParcelReader::new(p.data());
        assert_eq!(r.read_status(), Ok(Status::ok()));
        assert_eq!(r.read_i32(), Ok(77));
    }

    #[test]
    fn bad_inputs() {
        let mut r = ParcelReader::new(&[5, 0, 0, 0, b'a', 0]);
        assert!(matches!(
            r.read_string16(),
            Err(ParcelError::NotEnoughData { .. })
        ));
        let mut r = ParcelReader::new(&[0xfe, 0xff, 0xff, 0xff]);
        assert_eq!(r.read_string16(), Err(ParcelError::BadLength(-2)));
        let mut r = ParcelReader::new(&[1, 0, 0, 0, b'a', 0, 1, 0]);
        assert_eq!(r.read_string16(), Err(ParcelError::StringNotTerminated));
        let mut r = ParcelReader::new(&[1, 0, 0, 0, 0x00, 0xd8, 0, 0]);
        assert_eq!(r.read_string16(), Err(ParcelError::InvalidUtf16));
        let mut r = ParcelReader::new(&[0xff, 0xff, 0xff, 0x7f]);
        assert!(matches!(
            r.read_byte_array(),
            Err(ParcelError::NotEnoughData { .. })
        ));
        let mut r = ParcelReader::new(&[2, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(r.read_strong_binder(), Err(ParcelError::BadBinderType(2)));
        let mut p = Parcel::new();
        p.write_interface_token("a.b");
        assert!(matches!(
            ParcelReader::new(p.data()).enforce_interface("a.c"),
            Err(ParcelError::InterfaceMismatch { .. })
        ));
        // v2: binder not listed in the table.
        let mut p = Parcel::new();
        p.write_strong_binder(Some((Address(3), stability::SYSTEM)));
        let mut r = ParcelReader::with_objects(p.data(), &[], true);
        assert_eq!(
            r.read_strong_binder(),
            Err(ParcelError::BinderNotInObjectTable(0))
        );
        let table = [0u32];
        let mut r = ParcelReader::with_objects(p.data(), &table, true);
        assert_eq!(
            r.read_strong_binder(),
            Ok(Some(BinderRef {
                address: Address(3),
                stability: 0x0c
            }))
        );
    }

    #[test]
    fn parcelable_roundtrip_and_forward_compat() {
        let mut p = Parcel::new();
        p.write_parcelable(|p| {
            p.write_byte_array(Some(&[0xaa, 0xbb]));
            p.write_i32(99); // a field a newer writer added
        });
        p.write_i32(7);
        let mut r = ParcelReader::new(p.data());
        let v = r.read_parcelable(|r| r.read_byte_array());
        assert_eq!(v, Ok(Some(vec![0xaa, 0xbb])));
        assert_eq!(r.read_i32(), Ok(7));
        let mut r = ParcelReader::new(&[1, 0, 0, 0, 3, 0, 0, 0]);
        assert_eq!(
            r.read_parcelable(|r| r.read_i32()),
            Err(ParcelError::BadParcelableSize(3))
        );
        // The smallest parcelable (its size word only), and one that ends with the parcel.
        let mut r = ParcelReader::new(&[1, 0, 0, 0, 4, 0, 0, 0, 9, 0, 0, 0]);
        assert_eq!(r.read_parcelable(|r| Ok(r.remaining())), Ok(0));
        assert_eq!(r.read_i32(), Ok(9));
        let mut r = ParcelReader::new(&[1, 0, 0, 0, 8, 0, 0, 0, 9, 0, 0, 0]);
        assert_eq!(r.read_parcelable(|r| r.read_i32()), Ok(9));
        assert_eq!(r.remaining(), 0);
        let mut r = ParcelReader::new(&[1, 0, 0, 0, 12, 0, 0, 0, 9, 0, 0, 0]);
        assert_eq!(
            r.read_parcelable(|r| r.read_i32()),
            Err(ParcelError::BadParcelableSize(12))
        );
    }

    #[test]
    fn scalars_read_back_and_the_position_follows() {
        let mut p = Parcel::new();
        assert!(p.is_empty());
        p.write_u32(0xdead_beef);
        assert!(!p.is_empty());
        p.write_bool(true);
        p.write_bool(false);
        p.write_i32(2);
        let mut r = ParcelReader::new(p.data());
        assert_eq!(r.position(), 0);
        assert_eq!(r.read_u32(), Ok(0xdead_beef));
        assert_eq!(r.position(), 4);
        assert_eq!(r.read_bool(), Ok(true));
        assert_eq!(r.read_bool(), Ok(false));
        // readBool: any non-zero word is true.
        assert_eq!(r.read_bool(), Ok(true));
        assert_eq!(r.position(), 16);
        assert_eq!(
            format!("{r:?}"),
            "ParcelReader { len: 16, pos: 16, objects: [], .. }"
        );
    }

    #[test]
    fn a_fat_reply_header_may_fill_the_rest_of_the_parcel() {
        // Header size 4: only the size word itself, which is the last word of the parcel.
        let mut p = Parcel::new();
        p.write_i32(ExceptionCode::HAS_REPLY_HEADER.0);
        p.write_i32(4);
        let mut r = ParcelReader::new(p.data());
        assert_eq!(r.read_status(), Ok(Status::ok()));
        assert_eq!(r.remaining(), 0);
        let mut p = Parcel::new();
        p.write_i32(ExceptionCode::HAS_REPLY_HEADER.0);
        p.write_i32(8);
        assert_eq!(
            ParcelReader::new(p.data()).read_status(),
            Err(ParcelError::BadStatusHeader(8))
        );
    }

    struct Named(&'static str);

    impl crate::Binder for Named {
        fn descriptor(&self) -> &str {
            self.0
        }
        fn on_transact(
            &self,
            _: u32,
            _: &mut ParcelReader<'_>,
            _: &mut Parcel,
        ) -> Result<(), crate::StatusCode> {
            Ok(())
        }
    }

    #[test]
    fn parcels_are_equal_only_with_the_same_objects() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut with_fd = Parcel::new();
        with_fd.write_fd(a.into());
        // A clone shares the fd: equal. Another fd at the same index: the same bytes, unequal.
        assert_eq!(with_fd.clone(), with_fd);
        let mut other_fd = Parcel::new();
        other_fd.write_fd(b.into());
        assert_eq!(other_fd.data(), with_fd.data());
        assert_ne!(other_fd, with_fd);
        let one = SpIBinder::local(Arc::new(Named("one")));
        let two = SpIBinder::local(Arc::new(Named("two")));
        let mut with_one = Parcel::new();
        with_one.write_binder(Some(&one));
        let mut with_one_again = Parcel::new();
        with_one_again.write_binder(Some(&one));
        let mut with_two = Parcel::new();
        with_two.write_binder(Some(&two));
        assert_eq!(with_one, with_one_again);
        assert_ne!(with_one, with_two);
        // A binder and an fd are never equal objects.
        let fd_object = with_fd.objects[0].1.clone();
        let binder_object = with_one.objects[0].1.clone();
        assert_ne!(fd_object, binder_object);
        assert_eq!(format!("{binder_object:?}"), "Binder(Local(one))");
        assert!(format!("{fd_object:?}").starts_with("Fd(OwnedFd"));
    }
}
