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
//! logged after that are written directly to the fallback output (standard error).
//! The switch is made under a lock that writers hold while they queue a line (never
//! while they wait for room), so a line logged while the guard is being dropped is
//! either queued before the switch, and written by the thread, or written directly
//! after it: never lost in between. (Unless the output is stuck: the guard waits at
//! most 2 s for the thread, then lets the process go on, as an unread log pipe must
//! not keep it from exiting.)

use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
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

/// How long a writer that found the queue full waits before it tries again.
const FULL_WAIT: Duration = Duration::from_micros(100);

enum Msg {
    Line(Vec<u8>),
    Shutdown,
}

/// The `MakeWriter` for `tracing_subscriber::fmt`: cheap to clone, shared by all
/// threads.
#[derive(Clone)]
pub(crate) struct BatchWriter {
    tx: SyncSender<Msg>,
    shared: Arc<Shared>,
}

/// What the writers and the guard share.
struct Shared {
    /// Whether lines go to the writer thread. Writers hold the read lock while
    /// they queue a line, and only then (queueing never waits under it); the
    /// guard takes the write lock to turn it off.
    queued: RwLock<bool>,
    /// Where lines go once the guard was dropped.
    fallback: Mutex<Box<dyn Write + Send>>,
}

/// Flushes the queued lines and stops the writer thread when dropped.
pub(crate) struct LogGuard {
    tx: SyncSender<Msg>,
    shared: Arc<Shared>,
    done: Receiver<()>,
    thread: Option<JoinHandle<()>>,
}

/// One `write` of `tracing_subscriber::fmt`, which formats each event completely and
/// writes it with one `write_all`: one line.
pub(crate) struct LineWriter<'a> {
    writer: &'a BatchWriter,
}

// === impl BatchWriter ===

impl BatchWriter {
    /// Starts the writer thread, writing to `out`; lines logged after the guard is
    /// dropped go to `fallback`.
    pub(crate) fn new(
        out: impl Write + Send + 'static,
        fallback: impl Write + Send + 'static,
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
        let shared = Arc::new(Shared {
            queued: RwLock::new(true),
            fallback: Mutex::new(Box::new(fallback)),
        });
        let guard = LogGuard {
            tx: tx.clone(),
            shared: Arc::clone(&shared),
            done,
            thread: Some(thread),
        };
        Ok((Self { tx, shared }, guard))
    }
}

impl<'a> MakeWriter<'a> for BatchWriter {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter { writer: self }
    }
}

// === impl LineWriter ===

impl Write for LineWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let mut msg = Msg::Line(bytes.to_vec());
        loop {
            {
                // Held while the line is queued, so the guard's switch comes
                // wholly before or after it.
                let queued = self
                    .writer
                    .shared
                    .queued
                    .read()
                    .unwrap_or_else(PoisonError::into_inner);
                if !*queued {
                    break;
                }
                match self.writer.tx.try_send(msg) {
                    Ok(()) => return Ok(bytes.len()),
                    Err(TrySendError::Full(back)) => msg = back,
                    Err(TrySendError::Disconnected(_)) => break,
                }
            }
            // The queue is full: wait for the writer thread to make room
            // (back-pressure), without holding the lock.
            std::thread::sleep(FULL_WAIT);
        }
        self.writer
            .shared
            .fallback
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write_all(bytes)?;
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
        // Later lines go to the fallback. Writers hold the read lock only while
        // queueing a line, which never waits, so this waits for nothing else;
        // every line queued before it is ahead of the shutdown message.
        *self
            .shared
            .queued
            .write()
            .unwrap_or_else(PoisonError::into_inner) = false;
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
        let (writer, guard) =
            BatchWriter::new(sink.clone(), Sink::default(), LINGER, MAX_LINES).unwrap();
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
        let (writer, guard) =
            BatchWriter::new(sink.clone(), Sink::default(), Duration::ZERO, 4).unwrap();
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
        let (writer, _guard) =
            BatchWriter::new(sink.clone(), Sink::default(), LINGER, MAX_LINES).unwrap();
        writer.make_writer().write_all(b"alone\n").unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while sink.bytes.lock().unwrap().is_empty() {
            assert!(Instant::now() < deadline, "the line was never written");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(&sink.bytes.lock().unwrap()[..], b"alone\n");
    }

    /// Lines logged after the guard is dropped go to the fallback output, whole
    /// and in order.
    #[test]
    fn lines_after_the_guard_go_to_the_fallback() {
        let (sink, fallback) = (Sink::default(), Sink::default());
        let (writer, guard) =
            BatchWriter::new(sink.clone(), fallback.clone(), LINGER, MAX_LINES).unwrap();
        writer.make_writer().write_all(b"before\n").unwrap();
        drop(guard);
        for i in 0..100 {
            writer
                .make_writer()
                .write_all(line(0, i).as_bytes())
                .unwrap();
        }
        assert_eq!(&sink.bytes.lock().unwrap()[..], b"before\n");
        let expected: String = (0..100).map(|i| line(0, i)).collect();
        assert_eq!(
            String::from_utf8(fallback.bytes.lock().unwrap().clone()).unwrap(),
            expected
        );
    }

    /// Threads logging while the guard is dropped lose nothing: each line is
    /// written once, by the thread or to the fallback, and each thread's lines
    /// keep their order within each output.
    #[test]
    fn no_line_is_lost_when_logging_races_the_shutdown() {
        // A slow output and a short queue, so that writers are still logging,
        // some of them waiting on the queue, when the guard is dropped.
        let sink = Sink {
            delay: Duration::from_micros(200),
            ..Sink::default()
        };
        let fallback = Sink::default();
        let (writer, guard) =
            BatchWriter::new(sink.clone(), fallback.clone(), Duration::ZERO, 8).unwrap();
        let started = std::sync::Barrier::new(5);
        std::thread::scope(|s| {
            for t in 0..4 {
                let (writer, started) = (writer.clone(), &started);
                s.spawn(move || {
                    started.wait();
                    for i in 0..3000 {
                        writer
                            .make_writer()
                            .write_all(line(t, i).as_bytes())
                            .unwrap();
                    }
                });
            }
            started.wait();
            std::thread::sleep(Duration::from_millis(20));
            drop(guard);
        });
        assert!(
            !fallback.bytes.lock().unwrap().is_empty(),
            "the guard was dropped while threads were still logging"
        );
        let mut seen = vec![Vec::new(); 4];
        for out in [&sink, &fallback] {
            let text = String::from_utf8(out.bytes.lock().unwrap().clone()).unwrap();
            let mut last = [None::<usize>; 4];
            for l in text.lines() {
                let mut words = l.split(' ').skip(1);
                let t: usize = words.next().unwrap().parse().unwrap();
                let i: usize = words.nth(1).unwrap().parse().unwrap();
                assert_eq!(format!("{l}\n"), line(t, i), "a line was cut or mixed");
                assert!(
                    last[t].is_none_or(|prev| prev < i),
                    "thread {t}: out of order"
                );
                last[t] = Some(i);
                seen[t].push(i);
            }
        }
        for (t, mut lines) in seen.into_iter().enumerate() {
            lines.sort_unstable();
            assert_eq!(lines, (0..3000).collect::<Vec<_>>(), "thread {t}");
        }
    }
}
