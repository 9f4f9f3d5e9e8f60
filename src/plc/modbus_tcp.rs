// SPDX-License-Identifier: MIT OR Apache-2.0
//! The Modbus TCP client of the reject worker: one request at a time on a blocking
//! `TcpStream`, each with a deadline, answered on the thread that asked. No runtime: the
//! worker thread that times the pulse edges writes the coil itself, so nothing stands
//! between its timer and the request leaving (see `docs/network.md`).
//!
//! Only what the worker needs: write single coil (5), write single register (6), write
//! multiple registers (16), read holding registers (3). A Modbus exception is
//! [`Error::Exception`] (the connection is fine); anything else, a timeout included, is
//! [`Error::Transport`] and the connection is to be dropped.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The server answered with this exception code.
    Exception(u8),
    /// No (valid) answer: the connection is not to be used any more.
    Transport(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Exception(code) => {
                write!(f, "Modbus exception {code} ({})", exception_name(*code))
            }
            Error::Transport(reason) => f.write_str(reason),
        }
    }
}

/// The standard name of an exception code.
pub fn exception_name(code: u8) -> &'static str {
    match code {
        1 => "illegal function",
        2 => "illegal data address",
        3 => "illegal data value",
        4 => "server device failure",
        5 => "acknowledge",
        6 => "server device busy",
        8 => "memory parity error",
        10 => "gateway path unavailable",
        11 => "gateway target device failed to respond",
        _ => "unknown exception",
    }
}

pub struct Client {
    stream: TcpStream,
    unit: u8,
    transaction: u16,
}

impl Client {
    /// Connects within `timeout`; requests go to unit `unit`.
    pub fn connect(addr: SocketAddr, unit: u8, timeout: Duration) -> std::io::Result<Client> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        // Each request is one small segment that must leave at once.
        stream.set_nodelay(true)?;
        Ok(Client {
            stream,
            unit,
            transaction: 0,
        })
    }

    pub fn write_single_coil(
        &mut self,
        coil: u16,
        on: bool,
        timeout: Duration,
    ) -> Result<(), Error> {
        self.write_one(5, coil, if on { 0xFF00 } else { 0 }, timeout)
    }

    pub fn write_single_register(
        &mut self,
        register: u16,
        value: u16,
        timeout: Duration,
    ) -> Result<(), Error> {
        self.write_one(6, register, value, timeout)
    }

    /// A write of one coil (5) or register (6): the answer echoes the request.
    fn write_one(
        &mut self,
        function: u8,
        address: u16,
        value: u16,
        timeout: Duration,
    ) -> Result<(), Error> {
        let mut pdu = vec![function];
        pdu.extend_from_slice(&address.to_be_bytes());
        pdu.extend_from_slice(&value.to_be_bytes());
        let answer = self.call(&pdu, timeout)?;
        expect_echo(&answer, &pdu)
    }

    pub fn write_multiple_registers(
        &mut self,
        first: u16,
        values: &[u16],
        timeout: Duration,
    ) -> Result<(), Error> {
        let count = u16::try_from(values.len())
            .ok()
            .filter(|n| (1..=123).contains(n))
            .ok_or_else(|| Error::Transport(format!("{} registers in one write", values.len())))?;
        let mut pdu = vec![16];
        pdu.extend_from_slice(&first.to_be_bytes());
        pdu.extend_from_slice(&count.to_be_bytes());
        pdu.push((count * 2) as u8);
        for value in values {
            pdu.extend_from_slice(&value.to_be_bytes());
        }
        let answer = self.call(&pdu, timeout)?;
        expect_echo(&answer, &pdu[..5])
    }

    pub fn read_holding_registers(
        &mut self,
        first: u16,
        count: u16,
        timeout: Duration,
    ) -> Result<Vec<u16>, Error> {
        let mut pdu = vec![3];
        pdu.extend_from_slice(&first.to_be_bytes());
        pdu.extend_from_slice(&count.to_be_bytes());
        let answer = self.call(&pdu, timeout)?;
        let bytes = usize::from(count) * 2;
        if answer.len() != 2 + bytes || usize::from(answer[1]) != bytes {
            return Err(Error::Transport(format!(
                "malformed answer to a read of {count} registers"
            )));
        }
        Ok(answer[2..]
            .chunks_exact(2)
            .map(|w| u16::from_be_bytes([w[0], w[1]]))
            .collect())
    }

    /// Sends `pdu` and returns the answer's PDU (its function code checked).
    fn call(&mut self, pdu: &[u8], timeout: Duration) -> Result<Vec<u8>, Error> {
        let deadline = Instant::now() + timeout;
        self.transaction = self.transaction.wrapping_add(1);
        let frame = encode(self.transaction, self.unit, pdu);
        self.stream
            .set_write_timeout(Some(timeout.max(Duration::from_micros(1))))
            .map_err(transport)?;
        self.stream.write_all(&frame).map_err(transport)?;
        loop {
            let mut header = [0u8; 7];
            self.read_exact(&mut header, deadline, timeout)?;
            let length = usize::from(u16::from_be_bytes([header[4], header[5]]));
            if header[2..4] != [0, 0] || !(2..=254).contains(&length) {
                return Err(Error::Transport("malformed Modbus TCP header".into()));
            }
            let mut answer = vec![0u8; length - 1];
            self.read_exact(&mut answer, deadline, timeout)?;
            // An answer to an earlier request that timed out: skip it.
            if u16::from_be_bytes([header[0], header[1]]) != self.transaction {
                continue;
            }
            return match answer[0] {
                f if f == pdu[0] => Ok(answer),
                f if f == pdu[0] | 0x80 && answer.len() >= 2 => Err(Error::Exception(answer[1])),
                f => Err(Error::Transport(format!(
                    "answer with function code {f} to a request with {}",
                    pdu[0]
                ))),
            };
        }
    }

    fn read_exact(
        &mut self,
        buf: &mut [u8],
        deadline: Instant,
        timeout: Duration,
    ) -> Result<(), Error> {
        let mut filled = 0;
        while filled < buf.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Transport(format!(
                    "no answer within {} ms",
                    timeout.as_millis()
                )));
            }
            self.stream
                .set_read_timeout(Some(left))
                .map_err(transport)?;
            match self.stream.read(&mut buf[filled..]) {
                Ok(0) => return Err(Error::Transport("the PLC closed the connection".into())),
                Ok(n) => filled += n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(transport(e)),
            }
        }
        Ok(())
    }
}

fn transport(e: std::io::Error) -> Error {
    Error::Transport(e.to_string())
}

fn expect_echo(answer: &[u8], expected: &[u8]) -> Result<(), Error> {
    if answer.len() >= expected.len() && answer[..expected.len()] == *expected {
        Ok(())
    } else {
        Err(Error::Transport(
            "the PLC's answer does not match the write".into(),
        ))
    }
}

/// A Modbus TCP frame: MBAP header (transaction, protocol 0, length, unit) and the PDU.
fn encode(transaction: u16, unit: u8, pdu: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(7 + pdu.len());
    frame.extend_from_slice(&transaction.to_be_bytes());
    frame.extend_from_slice(&[0, 0]);
    frame.extend_from_slice(&((pdu.len() + 1) as u16).to_be_bytes());
    frame.push(unit);
    frame.extend_from_slice(pdu);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A server answering each request with what `answer` makes of its frame.
    fn server(answer: fn(&[u8]) -> Vec<Vec<u8>>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut header = [0u8; 7];
            while stream.read_exact(&mut header).is_ok() {
                let length = usize::from(u16::from_be_bytes([header[4], header[5]]));
                let mut pdu = vec![0u8; length - 1];
                stream.read_exact(&mut pdu).unwrap();
                let mut request = header.to_vec();
                request.extend_from_slice(&pdu);
                for frame in answer(&request) {
                    stream.write_all(&frame).unwrap();
                }
            }
        });
        addr
    }

    fn reply(request: &[u8], pdu: &[u8]) -> Vec<u8> {
        let tid = u16::from_be_bytes([request[0], request[1]]);
        encode(tid, request[6], pdu)
    }

    const T: Duration = Duration::from_millis(500);

    #[test]
    fn requests_are_framed_and_answers_read() {
        let addr = server(|request| {
            assert_eq!(&request[2..4], &[0, 0], "protocol 0");
            assert_eq!(request[6], 7, "unit id");
            let pdu = &request[7..];
            vec![match pdu[0] {
                5 | 6 => reply(request, pdu),
                16 => reply(request, &pdu[..5]),
                3 => reply(request, &[3, 4, 0x12, 0x34, 0xAB, 0xCD]),
                f => reply(request, &[f | 0x80, 1]),
            }]
        });
        let mut client = Client::connect(addr, 7, T).unwrap();
        client.write_single_coil(3, true, T).unwrap();
        client.write_single_coil(3, false, T).unwrap();
        client.write_single_register(10, 0xBEEF, T).unwrap();
        client.write_multiple_registers(10, &[1, 2, 3], T).unwrap();
        assert_eq!(
            client.read_holding_registers(0, 2, T).unwrap(),
            [0x1234, 0xABCD]
        );
    }

    #[test]
    fn an_exception_is_not_a_transport_failure() {
        let addr = server(|request| vec![reply(request, &[0x85, 6])]);
        let mut client = Client::connect(addr, 1, T).unwrap();
        let error = client.write_single_coil(0, false, T).unwrap_err();
        assert_eq!(error, Error::Exception(6));
        assert!(error.to_string().contains("server device busy"), "{error}");
    }

    #[test]
    fn a_stale_answer_is_skipped_and_silence_times_out() {
        // First an answer to another transaction, then the right one.
        let addr = server(|request| {
            let stale = encode(0xFFFF, request[6], &[5, 0, 9, 0, 0]);
            vec![stale, reply(request, &request[7..])]
        });
        let mut client = Client::connect(addr, 1, T).unwrap();
        client.write_single_coil(1, true, T).unwrap();

        let silent = server(|_| Vec::new());
        let mut client = Client::connect(silent, 1, T).unwrap();
        let started = Instant::now();
        let error = client
            .write_single_coil(1, true, Duration::from_millis(50))
            .unwrap_err();
        assert!(
            matches!(error, Error::Transport(ref m) if m.contains("no answer")),
            "{error}"
        );
        assert!(started.elapsed() < Duration::from_millis(500));
    }
}
