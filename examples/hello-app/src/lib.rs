//! `IHello`, the interface the demo payload serves to the host over vsock (AOSP's
//! `AVmPayload_runVsockRpcServer` pattern) and the host side's proxy for it. AIDL shape:
//!
//! ```text
//! interface IHello {
//!     String greet(String name);   // 1: "Hello, <name>! (from the VM, CID <cid>)"
//!     byte[] echo(in byte[] data); // 2: the same bytes back
//!     void quit();                 // 3: the payload exits 0 after replying
//! }
//! ```

// Tests may unwrap: a failing assertion is the point there.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use std::io::{Read, Write};
use std::sync::Arc;

use rpcbinder::{
    Binder, CallError, ClientConfig, InterfaceClient, Parcel, ParcelReader, Status, StatusCode,
};

/// The interface descriptor.
pub const DESCRIPTOR: &str = "com.example.microdroid.hello.IHello";

/// Transaction codes (`FIRST_CALL_TRANSACTION + index`).
pub mod codes {
    pub const GREET: u32 = 1;
    pub const ECHO: u32 = 2;
    pub const QUIT: u32 = 3;
}

/// The payload's implementation.
pub struct Greeter {
    cid: u32,
    on_quit: Arc<dyn Fn() + Send + Sync>,
}

impl Greeter {
    /// A greeter for the VM with `cid`; `on_quit` runs after a `quit()` has been answered.
    pub fn new(cid: u32, on_quit: Arc<dyn Fn() + Send + Sync>) -> Self {
        Greeter { cid, on_quit }
    }

    /// What `greet(name)` answers.
    pub fn greeting(&self, name: &str) -> String {
        format!("Hello, {name}! (from the VM, CID {})", self.cid)
    }
}

impl Binder for Greeter {
    fn descriptor(&self) -> &str {
        DESCRIPTOR
    }

    fn on_transact(
        &self,
        code: u32,
        data: &mut ParcelReader<'_>,
        reply: &mut Parcel,
    ) -> Result<(), StatusCode> {
        match code {
            codes::GREET => {
                let name = data
                    .read_string16()
                    .map_err(|e| e.status_code())?
                    .ok_or(StatusCode::UNEXPECTED_NULL)?;
                reply.write_status(&Status::ok());
                reply.write_str(&self.greeting(&name));
                Ok(())
            }
            codes::ECHO => {
                let bytes = data
                    .read_byte_array()
                    .map_err(|e| e.status_code())?
                    .ok_or(StatusCode::UNEXPECTED_NULL)?;
                reply.write_status(&Status::ok());
                reply.write_byte_array(Some(&bytes));
                Ok(())
            }
            codes::QUIT => {
                reply.write_status(&Status::ok());
                let on_quit = self.on_quit.clone();
                // After the reply is on its way.
                std::thread::spawn(move || {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    on_quit();
                });
                Ok(())
            }
            _ => Err(StatusCode::UNKNOWN_TRANSACTION),
        }
    }
}

/// The host's proxy for a payload's `IHello`.
pub struct HelloClient<S: Read + Write>(InterfaceClient<S>);

impl<S: Read + Write> HelloClient<S> {
    /// Sets up an RPC binder session on a connected stream (AOSP's
    /// `setup_preconnected_client`) and checks the root object's descriptor.
    pub fn connect(stream: S) -> Result<Self, rpcbinder::Error> {
        Ok(HelloClient(InterfaceClient::connect(
            stream,
            ClientConfig::default(),
            DESCRIPTOR,
        )?))
    }

    pub fn greet(&self, name: &str) -> Result<String, CallError> {
        let reply = self.0.call(codes::GREET, |p| p.write_str(name))?;
        let mut reader = reply.reader();
        reader.read_status().map_err(rpcbinder::Error::Parcel)?;
        Ok(reader.read_string().map_err(rpcbinder::Error::Parcel)?)
    }

    pub fn echo(&self, data: &[u8]) -> Result<Vec<u8>, CallError> {
        let reply = self
            .0
            .call(codes::ECHO, |p| p.write_byte_array(Some(data)))?;
        let mut reader = reply.reader();
        reader.read_status().map_err(rpcbinder::Error::Parcel)?;
        reader
            .read_byte_array()
            .map_err(rpcbinder::Error::Parcel)?
            .ok_or(CallError::Rpc(rpcbinder::Error::UnexpectedReply))
    }

    pub fn quit(&self) -> Result<(), CallError> {
        self.0.call_void(codes::QUIT, |_| {})
    }

    /// Ends the session.
    pub fn close(&self) -> Result<(), CallError> {
        self.0.close()
    }
}

/// The host's proxy for a payload's `IHello` on a session opened by vmclient
/// (`VmInstance::connect_service`).
#[derive(Debug, Clone)]
pub struct HelloProxy(pub rpcbinder::SpIBinder);

impl HelloProxy {
    /// Checks the root object's descriptor (as NDK clients do) and wraps it.
    pub fn from_binder(binder: rpcbinder::SpIBinder) -> Result<Self, CallError> {
        let proxy = binder
            .as_remote()
            .ok_or(CallError::Rpc(rpcbinder::Error::UnexpectedReply))?;
        let actual = proxy.interface_descriptor()?;
        if actual != DESCRIPTOR {
            return Err(CallError::Rpc(rpcbinder::Error::DescriptorMismatch {
                expected: DESCRIPTOR.into(),
                actual,
            }));
        }
        Ok(HelloProxy(binder))
    }

    pub fn greet(&self, name: &str) -> Result<String, CallError> {
        let reply =
            rpcbinder::session::call(&self.0, DESCRIPTOR, codes::GREET, |p| p.write_str(name))?;
        Ok(reply
            .reader()
            .read_string()
            .map_err(rpcbinder::Error::Parcel)?)
    }

    pub fn echo(&self, data: &[u8]) -> Result<Vec<u8>, CallError> {
        let reply = rpcbinder::session::call(&self.0, DESCRIPTOR, codes::ECHO, |p| {
            p.write_byte_array(Some(data))
        })?;
        let bytes = reply
            .reader()
            .read_byte_array()
            .map_err(rpcbinder::Error::Parcel)?;
        bytes.ok_or(CallError::Rpc(rpcbinder::Error::UnexpectedReply))
    }

    pub fn quit(&self) -> Result<(), CallError> {
        rpcbinder::session::call(&self.0, DESCRIPTOR, codes::QUIT, |_| {}).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixStream;

    use super::*;

    #[test]
    fn greet_echo_and_quit_over_a_session() {
        let quits = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counter = quits.clone();
        let greeter = Greeter::new(
            2049,
            Arc::new(move || {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }),
        );
        let (a, b) = UnixStream::pair().unwrap();
        let server = rpcbinder::RpcServer::new(Arc::new(greeter));
        let thread = std::thread::spawn(move || server.serve_connection(b));
        let client = HelloClient::connect(a).unwrap();
        assert_eq!(
            client.greet("Microdroid").unwrap(),
            "Hello, Microdroid! (from the VM, CID 2049)"
        );
        let big = vec![0x5a; 64 * 1024];
        assert_eq!(client.echo(&big).unwrap(), big);
        client.quit().unwrap();
        client.close().unwrap();
        thread.join().unwrap().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert_eq!(quits.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
