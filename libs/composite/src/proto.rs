//! crosvm `protos/src/cdisk_spec.proto`, hand-written for prost (no protoc at build time).
//!
//! ```proto
//! syntax = "proto3";
//! enum ReadWriteCapability { READ_ONLY = 0; READ_WRITE = 1; }
//! message ComponentDisk {
//!   string file_path = 1;
//!   uint64 offset = 2;
//!   ReadWriteCapability read_write_capability = 3;
//!   uint64 file_offset = 4;
//! }
//! message CompositeDisk {
//!   uint64 version = 1;
//!   repeated ComponentDisk component_disks = 2;
//!   uint64 length = 3;
//! };
//! ```
//!
//! prost writes fields in field-number order and omits proto3 defaults, as rust-protobuf does
//! in crosvm, so encodings are byte-identical.

/// `ReadWriteCapability`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ReadWriteCapability {
    /// READ_ONLY = 0.
    ReadOnly = 0,
    /// READ_WRITE = 1.
    ReadWrite = 1,
}

/// `ComponentDisk`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ComponentDisk {
    /// Host file backing this range.
    #[prost(string, tag = "1")]
    pub file_path: String,
    /// Guest-visible offset.
    #[prost(uint64, tag = "2")]
    pub offset: u64,
    /// Access.
    #[prost(enumeration = "ReadWriteCapability", tag = "3")]
    pub read_write_capability: i32,
    /// Offset into the host file (newer crosvm).
    #[prost(uint64, tag = "4")]
    pub file_offset: u64,
}

/// `CompositeDisk`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CompositeDisk {
    /// Format version (2).
    #[prost(uint64, tag = "1")]
    pub version: u64,
    /// Components in offset order.
    #[prost(message, repeated, tag = "2")]
    pub component_disks: Vec<ComponentDisk>,
    /// Disk size in bytes.
    #[prost(uint64, tag = "3")]
    pub length: u64,
}
