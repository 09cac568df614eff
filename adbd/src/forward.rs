//! `tcp:PORT`: a stream to one of the VM's own TCP ports (what `adb forward tcp:L tcp:R`
//! opens), e.g. a gdbserver's. Only loopback: adbd is no proxy into other networks.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};

use crate::stream::{StreamReader, StreamWriter};

pub fn run(mut reader: StreamReader, writer: StreamWriter, port: u16) {
    let socket = match TcpStream::connect(("127.0.0.1", port)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("adbd: tcp:{port}: {e}");
            return; // the caller closes the stream: the client sees the OPEN fail
        }
    };
    if writer.ends.ready().is_err() {
        return;
    }
    let _ = socket.set_nodelay(true);
    let Ok(mut from_socket) = socket.try_clone() else {
        return;
    };
    let ends = writer.ends.clone();
    let pump = std::thread::spawn(move || {
        let mut buf = vec![0u8; writer.max_payload().min(64 * 1024)];
        loop {
            match from_socket.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if writer.send(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        writer.ends.close();
    });
    let mut to_socket = socket;
    while let Some(chunk) = reader.next_chunk() {
        if to_socket.write_all(&chunk).is_err() {
            break;
        }
    }
    let _ = to_socket.shutdown(Shutdown::Both);
    ends.close();
    let _ = pump.join();
}
