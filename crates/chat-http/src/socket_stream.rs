//! A socket's TCP stream, which tells the socket's task whether its client may have sent
//! something since a read last found nothing.
//!
//! A busy socket's task wakes for every push the hub queues. Reading the client after each
//! one — through tokio-tungstenite, its stream adapter and tokio's readiness check, which
//! finds nothing nearly every time — cost more than the bookkeeping of writing the push. The
//! stream passes its own waker to tokio instead of the reader's, so that a readiness event
//! first raises [`Readable`]'s flag and then wakes the reader and the socket's task; the task
//! reads only when the flag is up (`gateway::next_frame`), and lowers it as it reads.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Whether the client may have sent something the socket has not read.
#[derive(Debug)]
pub(crate) struct Readable {
    flag: AtomicBool,
    /// Who read last: woken, after the flag is raised, when the stream becomes readable.
    reader: AtomicWaker,
    /// The socket's task, while it waits for the flag ([`Readable::wait`]).
    task: AtomicWaker,
}

impl Readable {
    /// Whether a read may find something now: the stream became readable since the last read
    /// began, or [`Readable::raise`] was called. If so the flag is lowered — the read that
    /// follows is the last to know of what came so far — else `cx`'s task is woken when it
    /// rises.
    pub(crate) fn wait(&self, cx: &Context<'_>) -> bool {
        if !self.flag.load(Ordering::Acquire) {
            self.task.register(cx.waker());
            // Raised between the load and the registration: its wake found no task.
            if !self.flag.load(Ordering::Acquire) {
                return false;
            }
        }
        self.flag.store(false, Ordering::Release);
        true
    }

    /// Marks the stream worth reading again — after a read that returned a frame, since the
    /// WebSocket may hold more frames from the same bytes.
    pub(crate) fn raise(&self) {
        self.flag.store(true, Ordering::Release);
    }
}

impl Wake for Readable {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.raise();
        self.reader.wake();
        self.task.wake();
    }
}

/// A TCP stream whose read readiness raises a [`Readable`] flag. Writes pass straight through.
#[derive(Debug)]
pub(crate) struct SocketStream {
    io: TcpStream,
    readable: Arc<Readable>,
    /// `readable` as a waker, made once: tokio keeps it and does not clone it again.
    waker: Waker,
}

impl SocketStream {
    /// Wraps `io`; its flag starts up, so that the first read is tried.
    pub(crate) fn new(io: TcpStream) -> Self {
        let readable =
            Arc::new(Readable { flag: AtomicBool::new(true), reader: AtomicWaker::new(), task: AtomicWaker::new() });
        let waker = Waker::from(Arc::clone(&readable));
        Self { io, readable, waker }
    }

    /// The stream's flag.
    pub(crate) fn readable(&self) -> Arc<Readable> {
        Arc::clone(&self.readable)
    }
}

impl AsyncRead for SocketStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.readable.reader.register(cx.waker());
        Pin::new(&mut this.io).poll_read(&mut Context::from_waker(&this.waker), buf)
    }
}

impl AsyncWrite for SocketStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;

    use tokio::io::AsyncWriteExt;

    use super::*;

    #[tokio::test]
    async fn the_flag_rises_when_the_client_sends_and_wakes_the_reader_and_the_task() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let mut client = TcpStream::connect(listener.local_addr().expect("address")).await.expect("connect");
        let mut stream = SocketStream::new(listener.accept().await.expect("accept").0);
        let readable = stream.readable();
        let (reader, task) = (Arc::new(Woken::default()), Arc::new(Woken::default()));
        let (reader_waker, task_waker) = (Waker::from(Arc::clone(&reader)), Waker::from(Arc::clone(&task)));
        let task_cx = Context::from_waker(&task_waker);
        assert!(readable.wait(&task_cx), "a new stream is read once");

        // A read that finds nothing: the flag stays down and the task waits for it.
        let mut bytes = [0_u8; 16];
        let mut buf = ReadBuf::new(&mut bytes);
        let nothing = Pin::new(&mut stream).poll_read(&mut Context::from_waker(&reader_waker), &mut buf);
        assert!(nothing.is_pending());
        assert!(!readable.wait(&task_cx), "nothing came");

        client.write_all(b"hello").await.expect("write");
        // The readiness event reaches the stream's own waker: the flag, then the reader and the task.
        tokio::time::timeout(std::time::Duration::from_secs(5), async {
            while !task.0.load(Ordering::Acquire) {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the task was woken");
        assert!(reader.0.load(Ordering::Acquire), "the reader was woken");
        assert!(readable.wait(&task_cx), "the flag rose");
        assert!(!readable.wait(&task_cx), "and is lowered by the read it lets through");

        let mut buf = ReadBuf::new(&mut bytes);
        poll_fn(|cx| Pin::new(&mut stream).poll_read(cx, &mut buf)).await.expect("read");
        assert_eq!(buf.filled(), b"hello");
    }

    #[derive(Default)]
    struct Woken(AtomicBool);

    impl Wake for Woken {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::Release);
        }
    }
}
