//! `buffered_wal` when the target fails: retry with backoff (paused time),
//! dead-lettering of exhausted batches and rejected records, and what
//! happens when the dead-letter destination fails or is missing.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{stream, Sink, SinkExt, StreamExt};
use tokio::time::Instant;
use unistream::sink::{DeliveryStopped, MemorySink, WalConfig, WalSinkExt};
use unistream::wal::Lsn;
use unistream::{DeadLetter, Error, RawCodec};

use crate::support::retry::deterministic;

/// A target that notes the (virtual) time of every delivery attempt.
struct Timed<T> {
    inner: MemorySink<T>,
    attempts: Arc<Mutex<Vec<Instant>>>,
}

impl<T> Sink<Vec<T>> for Timed<T> {
    type Error = Error;
    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Pin::new(&mut self.inner).poll_ready(cx)
    }
    fn start_send(mut self: Pin<&mut Self>, batch: Vec<T>) -> Result<(), Error> {
        self.attempts.lock().unwrap().push(Instant::now());
        Pin::new(&mut self.inner).start_send(batch)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

fn offsets(times: &[Instant]) -> Vec<Duration> {
    times.iter().map(|t| *t - times[0]).collect()
}

#[tokio::test(start_paused = true)]
async fn retries_follow_the_backoff_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let inner = MemorySink::<u64>::new();
    let delivered = inner.handle();
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let target = Timed {
        inner,
        attempts: attempts.clone(),
    };
    delivered.fail_next(3);
    let mut sink = target
        .buffered_wal(
            WalConfig::new(dir.path())
                .max_age(Duration::ZERO)
                .retry(deterministic(5)),
        )
        .await
        .unwrap();

    sink.send(7).await.unwrap();
    delivered.wait_for_records(1).await;

    let ms = Duration::from_millis;
    assert_eq!(
        offsets(&attempts.lock().unwrap()),
        vec![ms(0), ms(100), ms(300), ms(700)]
    );
    assert_eq!(delivered.records(), vec![7]);
    sink.close().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_exhausted_batch_goes_to_the_dead_letter_sink_and_the_log_moves_on() {
    let dir = tempfile::tempdir().unwrap();
    let inner = MemorySink::<u64>::new();
    let target_handle = inner.handle();
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let target = Timed {
        inner,
        attempts: attempts.clone(),
    };
    let dead_letter = MemorySink::<DeadLetter<u64>>::new();
    let dead = dead_letter.handle();
    target_handle.fail_next(u64::MAX);

    let mut sink = target
        .buffered_wal(
            WalConfig::new(dir.path())
                .max_records(3)
                .retry(deterministic(3))
                .dead_letter(dead_letter),
        )
        .await
        .unwrap();
    for i in 0..3u64 {
        sink.feed(i).await.unwrap();
    }
    sink.flush().await.unwrap();
    dead.wait_for_records(3).await;

    let ms = Duration::from_millis;
    assert_eq!(
        offsets(&attempts.lock().unwrap()),
        vec![ms(0), ms(100), ms(300)]
    );
    let entries = dead.records();
    assert_eq!(
        entries.iter().map(|e| e.record).collect::<Vec<_>>(),
        vec![Some(0), Some(1), Some(2)]
    );
    for entry in &entries {
        assert_eq!(entry.attempts, 3);
        assert!(
            entry.reason.contains("injected failure"),
            "{}",
            entry.reason
        );
        assert!(entry.origin.as_deref().unwrap_or("").contains("lsn"));
    }
    assert_eq!(target_handle.record_count(), 0);

    // The log moved on: once the target heals, new records flow.
    target_handle.heal();
    sink.send(10).await.unwrap();
    sink.close().await.unwrap();
    assert_eq!(target_handle.records(), vec![10]);
    let stats = sink.wal_stats();
    assert_eq!(stats.committed_lsn, stats.next_lsn);
}

#[tokio::test(start_paused = true)]
async fn when_the_dead_letter_sink_fails_nothing_is_committed_and_the_error_surfaces() {
    let dir = tempfile::tempdir().unwrap();
    let target = MemorySink::<u64>::new();
    let target_handle = target.handle();
    target_handle.fail_next(u64::MAX);
    let dead_letter = MemorySink::<DeadLetter<u64>>::new();
    dead_letter.handle().fail_next(u64::MAX);

    let mut sink = target
        .buffered_wal(
            WalConfig::new(dir.path())
                .retry(deterministic(2))
                .dead_letter(dead_letter),
        )
        .await
        .unwrap();
    sink.send(1).await.unwrap();
    sink.send(2).await.unwrap();

    let err = sink.close().await.unwrap_err();
    assert!(matches!(err, Error::DeadLetter(_)), "{err:?}");
    assert_eq!(sink.wal_stats().committed_lsn, Lsn(0));
    // Closing again reports that delivery is not running (and does not
    // pretend that everything was delivered).
    let again = sink.close().await.unwrap_err();
    assert!(
        matches!(&again, Error::Target { source, .. } if source.is::<DeliveryStopped>()),
        "{again:?}"
    );
    // Later calls keep failing, with a typed "not running" error.
    let again = sink.send(3).await.unwrap_err();
    match &again {
        Error::Target { source, .. } => assert!(source.is::<DeliveryStopped>(), "{again:?}"),
        other => panic!("unexpected {other:?}"),
    }
    drop(sink);

    // Nothing was lost: reopening redelivers both records first, in order.
    let healthy = MemorySink::<u64>::new();
    let delivered = healthy.handle();
    let mut sink = healthy
        .buffered_wal(WalConfig::new(dir.path()))
        .await
        .unwrap();
    sink.close().await.unwrap();
    assert_eq!(delivered.records(), vec![1, 2]);
}

#[tokio::test(start_paused = true)]
async fn without_a_dead_letter_sink_an_exhausted_batch_stops_delivery_and_stays_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let target = MemorySink::<u64>::new();
    target.handle().fail_next(u64::MAX);
    let mut sink = target
        .buffered_wal(WalConfig::new(dir.path()).retry(deterministic(2)))
        .await
        .unwrap();
    sink.send(1).await.unwrap();
    let err = sink.close().await.unwrap_err();
    assert!(matches!(err, Error::Target { .. }), "{err:?}");
    assert!(
        unistream::ErrorChain(&err)
            .to_string()
            .contains("injected failure"),
        "{err}"
    );
    assert_eq!(sink.wal_stats().committed_lsn, Lsn(0));
    drop(sink);

    let healthy = MemorySink::<u64>::new();
    let delivered = healthy.handle();
    let sink = healthy
        .buffered_wal(WalConfig::new(dir.path()))
        .await
        .unwrap();
    stream::iter([2u64]).map(Ok).forward(sink).await.unwrap();
    assert_eq!(delivered.records(), vec![1, 2]);
}

#[tokio::test]
async fn rejected_records_are_dead_lettered_with_their_reason_and_the_rest_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let target = MemorySink::<u64>::new();
    let delivered = target.handle();
    delivered.reject_where(|x| (x % 3 == 0).then(|| format!("{x} is a multiple of three")));
    let dead_letter = MemorySink::<DeadLetter<u64>>::new();
    let dead = dead_letter.handle();

    let sink = target
        .buffered_wal(
            WalConfig::new(dir.path())
                .max_records(4)
                .dead_letter(dead_letter),
        )
        .await
        .unwrap();
    stream::iter(0..10u64).map(Ok).forward(sink).await.unwrap();

    assert_eq!(delivered.records(), vec![1, 2, 4, 5, 7, 8]);
    let entries = dead.records();
    assert_eq!(
        entries.iter().map(|e| e.record).collect::<Vec<_>>(),
        vec![Some(0), Some(3), Some(6), Some(9)]
    );
    assert_eq!(entries[1].reason, "3 is a multiple of three");
    assert!(entries.iter().all(|e| e.attempts == 1));
    // Rejection is final: no retry of the rest of the batch.
    assert_eq!(delivered.attempts(), 3);
}

#[tokio::test]
async fn without_a_dead_letter_sink_a_rejection_stops_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let target = MemorySink::<u64>::new();
    target
        .handle()
        .reject_where(|x| (*x == 2).then(|| "two".to_string()));
    let sink = target
        .buffered_wal(WalConfig::new(dir.path()))
        .await
        .unwrap();
    let err = stream::iter(0..5u64)
        .map(Ok)
        .forward(sink)
        .await
        .unwrap_err();
    match err {
        Error::Rejected(rejected) => assert_eq!(rejected[0].reason, "two"),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn bytes_that_no_longer_decode_are_dead_lettered_raw() {
    let dir = tempfile::tempdir().unwrap();
    // A first run writes strings, and is dropped before delivering them.
    let stuck = MemorySink::<String>::new();
    stuck.handle().stall();
    let mut sink = stuck
        .buffered_wal(WalConfig::new(dir.path()).codec(RawCodec))
        .await
        .unwrap();
    for s in ["1", "not json", "3"] {
        sink.feed(s.to_string()).await.unwrap();
    }
    sink.flush().await.unwrap();
    drop(sink);

    // A second run reads them as JSON numbers.
    let target = MemorySink::<u64>::new();
    let delivered = target.handle();
    let dead_letter = MemorySink::<DeadLetter<u64>>::new();
    let dead = dead_letter.handle();
    let mut sink = target
        .buffered_wal(WalConfig::new(dir.path()).dead_letter(dead_letter))
        .await
        .unwrap();
    sink.close().await.unwrap();

    assert_eq!(delivered.records(), vec![1, 3]);
    let entries = dead.records();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].record, None);
    assert_eq!(entries[0].raw.as_deref(), Some(&b"not json"[..]));
    assert!(
        entries[0].reason.contains("decode"),
        "{}",
        entries[0].reason
    );
}

/// A target that panics on its first batch.
struct Panicking;

impl Sink<Vec<u64>> for Panicking {
    type Error = Error;
    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }
    fn start_send(self: Pin<&mut Self>, _: Vec<u64>) -> Result<(), Error> {
        panic!("target bug");
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn a_panicking_target_stops_delivery_with_an_error_instead_of_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = Panicking
        .buffered_wal(WalConfig::new(dir.path()))
        .await
        .unwrap();
    sink.send(1).await.unwrap();
    let err = sink.close().await.unwrap_err();
    assert!(
        unistream::ErrorChain(&err)
            .to_string()
            .contains("target bug"),
        "{err}"
    );
    assert_eq!(sink.wal_stats().committed_lsn, Lsn(0));
}

/// JSON, except that decoding the number 300 panics (a codec bug).
#[derive(Clone)]
struct PanicsOn300;

impl unistream::Codec<u64> for PanicsOn300 {
    fn encode(&self, item: &u64, buf: &mut Vec<u8>) -> Result<(), unistream::codec::CodecError> {
        unistream::JsonCodec.encode(item, buf)
    }
    fn decode(&self, bytes: &[u8]) -> Result<u64, unistream::codec::CodecError> {
        let n: u64 = unistream::JsonCodec.decode(bytes)?;
        assert_ne!(n, 300, "codec bug");
        Ok(n)
    }
}

#[tokio::test]
async fn a_codec_panicking_on_the_blocking_decode_path_stops_delivery_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let stuck = MemorySink::<u64>::new();
    stuck.handle().stall();
    let config = || WalConfig::new(dir.path()).max_records(500);
    // 600 records in the log before delivery starts: read in one go, so
    // decoded on the blocking pool, where the codec panics on record 300.
    let mut sink = stuck.buffered_wal(config()).await.unwrap();
    sink.send_all(&mut stream::iter(0..600u64).map(Ok))
        .await
        .unwrap();
    drop(sink);

    let target = MemorySink::<u64>::new();
    let delivered = target.handle();
    let mut sink = target
        .buffered_wal(config().codec(PanicsOn300))
        .await
        .unwrap();
    let err = sink.close().await.unwrap_err();
    assert!(
        unistream::ErrorChain(&err)
            .to_string()
            .contains("codec bug"),
        "{err}"
    );
    assert!(
        delivered.records().is_empty(),
        "{:?}",
        delivered.records().len()
    );
    assert_eq!(sink.wal_stats().committed_lsn, Lsn(0));
    drop(sink);

    // Everything is still in the log for a fixed codec.
    let target = MemorySink::<u64>::new();
    let delivered = target.handle();
    let mut sink = target.buffered_wal(config()).await.unwrap();
    sink.close().await.unwrap();
    assert_eq!(delivered.records(), (0..600).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_corrupt_frame_behind_full_batches_surfaces_after_the_records_before_it() {
    use std::io::{Read, Seek, SeekFrom, Write};

    let dir = tempfile::tempdir().unwrap();
    let stuck = MemorySink::<u64>::new();
    stuck.handle().stall();
    let config = || WalConfig::new(dir.path()).max_records(10);
    let mut sink = stuck.buffered_wal(config()).await.unwrap();
    sink.send_all(&mut stream::iter(0..40u64).map(Ok))
        .await
        .unwrap();
    drop(sink);

    // Flip the payload of record 25 (JSON numbers: "0".."39"): frames are a
    // 12-byte header and the payload, after the 16-byte segment header.
    let segment = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "wal"))
        .unwrap();
    let offset: u64 = 16
        + (0..25u64)
            .map(|i| 12 + i.to_string().len() as u64)
            .sum::<u64>()
        + 12;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&segment)
        .unwrap();
    let mut byte = [0u8; 1];
    file.seek(SeekFrom::Start(offset)).unwrap();
    file.read_exact(&mut byte).unwrap();
    assert_eq!(byte[0], b'2', "the first payload byte of record 25");
    file.seek(SeekFrom::Start(offset)).unwrap();
    file.write_all(b"9").unwrap();
    drop(file);

    // Batches of 10 are read ahead while the target works; the damage is
    // met after records 0..25 were read. Those are delivered and their
    // commit handed to the committer; then the error surfaces, and nothing
    // past the damage counts.
    let target = MemorySink::<u64>::new();
    let delivered = target.handle();
    let mut sink = target.buffered_wal(config()).await.unwrap();
    let err = sink.close().await.unwrap_err();
    drop(sink);
    assert!(
        matches!(&err, Error::Wal(e) if e.is_corrupt()),
        "expected a corruption error, got {err:?}"
    );
    let got = delivered.records();
    assert_eq!(
        got,
        (0..got.len() as u64).collect::<Vec<_>>(),
        "in order, no gap"
    );
    assert!(got.len() <= 25, "nothing past the damage: {}", got.len());
    assert!(got.len() >= 20, "the full batches before it: {}", got.len());
    // The reopened log starts right after what was delivered, at the
    // damage, which it reports again.
    let target = MemorySink::<u64>::new();
    let again = target.handle();
    let mut sink = target.buffered_wal(config()).await.unwrap();
    assert_eq!(sink.recovery().uncommitted_records, 40 - got.len() as u64);
    let err = sink.close().await.unwrap_err();
    assert!(matches!(&err, Error::Wal(e) if e.is_corrupt()), "{err:?}");
    assert!(again.records().is_empty(), "{:?}", again.records());
}
