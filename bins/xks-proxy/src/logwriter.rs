//! Log lines written by a background thread, in batches.
//!
//! Every request writes one log line. Writing it on the request's thread would let a
//! slow log pipe stall requests; handing each line to a writer thread that wakes up
//! for every line (as `tracing-appender` does) costs a thread wake-up per line,
//! which at KMS's usual rates (hundreds to a few thousand requests per second, one
//! at a time) is a large part of the CPU a request costs. Here the writer thread,
//! once woken by a line, lingers a few milliseconds so that the lines of that moment
//! go out in one `write`; lines sent while it lingers or writes wake nobody.
//!
//! Lines travel through a bounded channel: nothing is dropped, and when
//! `max_lines` lines wait, request threads wait for the writer (back-pressure, as an
//! audit log requires). [`LogGuard`] flushes what is left when dropped; lines
//! logged after that are written directly.

use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing_subscriber::fmt::MakeWriter;

/// How long the writer waits for more lines after the first of a batch.
pub(crate) const LINGER: Duration = Duration::from_millis(5);

/// Lines queued before request threads wait for the writer.
pub(crate) const MAX_LINES: usize = 65_536;

/// A batch is written once it holds this many bytes, lingering or not.
const MAX_BATCH: usize = 1 << 20;

/// How long dropping the guard waits for the last lines to be written.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

enum Msg {
    Line(Vec<u8>),
    Shutdown,
}

/// The `MakeWriter` for `tracing_subscriber::fmt`: cheap to clone, shared by all
/// threads.
#[derive(Clone)]
pub(crate) struct BatchWriter {
    tx: SyncSender<Msg>,
}

/// Flushes the queued lines and stops the writer thread when dropped.
pub(crate) struct LogGuard {
    tx: SyncSender<Msg>,
    done: Receiver<()>,
    thread: Option<JoinHandle<()>>,
}

/// One `write` of `tracing_subscriber::fmt`, which formats each event completely and
/// writes it with one `write_all`: one line.
pub(crate) struct LineWriter<'a> {
    tx: &'a SyncSender<Msg>,
}

// === impl BatchWriter ===

impl BatchWriter {
    /// Starts the writer thread, writing to `out`.
    pub(crate) fn new(
        out: impl Write + Send + 'static,
        linger: Duration,
        max_lines: usize,
    ) -> io::Result<(Self, LogGuard)> {
        let (tx, rx) = mpsc::sync_channel(max_lines);
        let (done_tx, done) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("xks-log".into())
            .spawn(move || {
                run(&rx, out, linger);
                let _ = done_tx.send(());
            })?;
        let guard = LogGuard {
            tx: tx.clone(),
            done,
            thread: Some(thread),
        };
        Ok((Self { tx }, guard))
    }
}

impl<'a> MakeWriter<'a> for BatchWriter {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter { tx: &self.tx }
    }
}

// === impl LineWriter ===

impl Write for LineWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        // Waits while the queue is full; after shutdown, writes directly.
        if let Err(mpsc::SendError(Msg::Line(line))) = self.tx.send(Msg::Line(bytes.to_vec())) {
            io::stderr().write_all(&line)?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The writer thread: waits for a line, lingers, writes everything queued in one go;
/// exits on `Shutdown` after writing what came before it.
fn run(rx: &Receiver<Msg>, mut out: impl Write, linger: Duration) {
    let mut batch = Vec::with_capacity(64 * 1024);
    loop {
        let mut stop = match rx.recv() {
            Ok(Msg::Line(line)) => {
                batch.extend_from_slice(&line);
                false
            }
            Ok(Msg::Shutdown) | Err(_) => true,
        };
        if !stop && !linger.is_zero() {
            std::thread::sleep(linger);
        }
        while !stop && batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(Msg::Line(line)) => batch.extend_from_slice(&line),
                Ok(Msg::Shutdown) => stop = true,
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            // Nowhere to report a failed log write; the next batch tries again.
            let _ = out.write_all(&batch);
            let _ = out.flush();
            batch.clear();
            if batch.capacity() > 4 * MAX_BATCH {
                batch.shrink_to(64 * 1024);
            }
        }
        if stop {
            return;
        }
    }
}

// === impl LogGuard ===

impl Drop for LogGuard {
    fn drop(&mut self) {
        // Bounded: a log pipe nobody reads must not keep the process from exiting.
        let deadline = Instant::now() + FLUSH_TIMEOUT;
        let mut msg = Msg::Shutdown;
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Full(back)) if Instant::now() < deadline => {
                    msg = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(_) => return,
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if self.done.recv_timeout(left).is_ok()
            && let Some(thread) = self.thread.take()
        {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// An output the test can read, optionally slow.
    #[derive(Clone, Default)]
    struct Sink {
        bytes: Arc<Mutex<Vec<u8>>>,
        writes: Arc<Mutex<usize>>,
        delay: Duration,
    }

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            std::thread::sleep(self.delay);
            self.bytes.lock().unwrap().extend_from_slice(b);
            *self.writes.lock().unwrap() += 1;
            Ok(b.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn line(thread: usize, i: usize) -> String {
        format!("thread {thread} line {i} {}\n", "x".repeat(i % 50))
    }

    /// Lines from many threads all arrive, whole, each thread's in order; dropping
    /// the guard flushes the last ones.
    #[test]
    fn every_line_arrives_whole_and_in_order() {
        let sink = Sink::default();
        let (writer, guard) = BatchWriter::new(sink.clone(), LINGER, MAX_LINES).unwrap();
        std::thread::scope(|s| {
            for t in 0..8 {
                let writer = writer.clone();
                s.spawn(move || {
                    for i in 0..2000 {
                        writer
                            .make_writer()
                            .write_all(line(t, i).as_bytes())
                            .unwrap();
                    }
                });
            }
        });
        drop(guard);
        let text = String::from_utf8(sink.bytes.lock().unwrap().clone()).unwrap();
        let mut next = [0usize; 8];
        for l in text.lines() {
            let mut words = l.split(' ');
            assert_eq!(words.next(), Some("thread"), "{l:?}");
            let t: usize = words.next().unwrap().parse().unwrap();
            assert_eq!(words.next(), Some("line"));
            let i: usize = words.next().unwrap().parse().unwrap();
            assert_eq!(format!("{l}\n"), line(t, i), "a line was cut or mixed");
            assert_eq!(i, next[t], "thread {t}: lines out of order");
            next[t] += 1;
        }
        assert_eq!(next, [2000; 8], "lines were lost");
        // Batched: far fewer writes than lines.
        let writes = *sink.writes.lock().unwrap();
        assert!(writes < 16_000, "{writes} writes for 16,000 lines");
    }

    /// A slow output and a short queue: writers wait for room, nothing is lost.
    #[test]
    fn a_full_buffer_makes_writers_wait_instead_of_dropping() {
        let sink = Sink {
            delay: Duration::from_millis(2),
            ..Sink::default()
        };
        let (writer, guard) = BatchWriter::new(sink.clone(), Duration::ZERO, 4).unwrap();
        for i in 0..300 {
            writer
                .make_writer()
                .write_all(line(0, i).as_bytes())
                .unwrap();
        }
        drop(guard);
        let text = String::from_utf8(sink.bytes.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 300);
        let expected: String = (0..300).map(|i| line(0, i)).collect();
        assert_eq!(text, expected);
    }

    /// An idle writer wakes for a single line and writes it within the linger
    /// time, without waiting for more.
    #[test]
    fn a_lone_line_is_written_without_more_traffic() {
        let sink = Sink::default();
        let (writer, _guard) = BatchWriter::new(sink.clone(), LINGER, MAX_LINES).unwrap();
        writer.make_writer().write_all(b"alone\n").unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while sink.bytes.lock().unwrap().is_empty() {
            assert!(Instant::now() < deadline, "the line was never written");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(&sink.bytes.lock().unwrap()[..], b"alone\n");
    }
}
