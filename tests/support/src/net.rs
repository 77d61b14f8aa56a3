//! Network stand-ins that need no HTTP stack.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A server that accepts connections and never answers until released: its
/// `http://` URL, and the flag that, once set, stops it and closes the
/// connections it holds.
pub fn silent_server() -> (String, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let release = Arc::new(AtomicBool::new(false));
    let released = Arc::clone(&release);
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        while !released.load(Ordering::Acquire) {
            match listener.accept() {
                Ok((socket, _)) => held.push(socket),
                Err(_) => std::thread::yield_now(),
            }
        }
    });
    (url, release)
}
