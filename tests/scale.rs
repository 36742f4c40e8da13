//! Fan-out at scale: 2 000 held stream subscribers over both workers each receive 100
//! publishes in order, none lost, none duplicated.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::timeout;

const SUBSCRIBERS: usize = 2_000;
const MESSAGES: usize = 100;
const INITIAL: &[u8] = b"ready\n";
/// Published after the numbered messages: anything duplicated would arrive before it.
const END: &[u8] = b"end\n";
/// The whole test stays under this.
const LIMIT: Duration = Duration::from_secs(30);

fn message(i: usize) -> String {
    format!("message {i:03}\n")
}

/// Reads chunks into `got` until `until` returns true for the chunks so far.
async fn read_chunks(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    got: &mut Vec<Vec<u8>>,
    until: impl Fn(&[Vec<u8>]) -> bool,
) -> Result<(), String> {
    let mut tmp = [0u8; 4096];
    loop {
        loop {
            match take_chunk(buf).map_err(|e| e.to_string())? {
                Chunk::Data(d) => got.push(d),
                Chunk::Last => return Err("stream ended early".into()),
                Chunk::NeedMore => break,
            }
        }
        if until(got) {
            return Ok(());
        }
        match s.read(&mut tmp).await {
            Ok(0) => return Err(format!("closed after {} chunks", got.len())),
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// One subscriber: opens the stream, reports when its initial body has arrived (it is then
/// subscribed), and returns every chunk after the initial one, up to and including END.
async fn subscriber(addr: SocketAddr, ready: mpsc::Sender<()>) -> Result<Vec<Vec<u8>>, String> {
    let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    s.write_all(b"GET /scale HTTP/1.1\r\nHost: scale.test\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        match s.read(&mut tmp).await {
            Ok(0) | Err(_) => return Err("no response head".into()),
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("bad head: {head}"));
    }
    buf.drain(..head_end);
    let mut got = Vec::new();
    read_chunks(&mut s, &mut buf, &mut got, |g| !g.is_empty()).await?;
    if got.remove(0) != INITIAL {
        return Err("wrong initial body".into());
    }
    let _ = ready.send(()).await;
    read_chunks(&mut s, &mut buf, &mut got, |g| {
        g.last().is_some_and(|c| c == END)
    })
    .await?;
    Ok(got)
}

fn publish_all(publish: SocketAddr) {
    let mut c = Client::connect(publish);
    let mut send = |content: &str| {
        let body = items(vec![stream_item("scale", content)]).to_string();
        let r = c.send_and_read(&request("POST", "/publish/", &[], body.as_bytes()));
        assert_eq!(r.status, 200, "{}", r.text());
    };
    for i in 0..MESSAGES {
        send(&message(i));
    }
    send(std::str::from_utf8(END).unwrap());
}

#[test]
fn two_thousand_stream_subscribers_get_every_message_in_order() {
    let origin = Origin::fixed(stream_hold("scale", INITIAL));
    let proxy = Proxy::to(&origin);
    let (http, publish) = (proxy.http, proxy.publish);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let start = Instant::now();
    let mut expected: Vec<Vec<u8>> = (0..MESSAGES).map(|i| message(i).into_bytes()).collect();
    expected.push(END.to_vec());
    rt.block_on(async move {
        let (ready_tx, mut ready_rx) = mpsc::channel(SUBSCRIBERS);
        let mut tasks = JoinSet::new();
        for _ in 0..SUBSCRIBERS {
            tasks.spawn(subscriber(http, ready_tx.clone()));
        }
        drop(ready_tx);
        for n in 0..SUBSCRIBERS {
            let left = LIMIT.saturating_sub(start.elapsed());
            match timeout(left, ready_rx.recv()).await {
                Ok(Some(())) => {}
                _ => panic!("only {n} of {SUBSCRIBERS} subscribers opened"),
            }
        }
        let opened = start.elapsed();
        println!("{SUBSCRIBERS} subscribers open in {opened:?}");
        tokio::task::spawn_blocking(move || publish_all(publish))
            .await
            .expect("publishing");
        let published = start.elapsed();
        let mut done = 0;
        while done < SUBSCRIBERS {
            let left = LIMIT.saturating_sub(start.elapsed());
            let joined = timeout(left, tasks.join_next()).await;
            let got = match joined {
                Ok(Some(Ok(Ok(got)))) => got,
                Ok(Some(Ok(Err(e)))) => panic!("a subscriber failed: {e}"),
                Ok(Some(Err(e))) => panic!("a subscriber panicked: {e}"),
                Ok(None) => break,
                Err(_) => panic!("{done} of {SUBSCRIBERS} subscribers done after {LIMIT:?}"),
            };
            assert!(got == expected, "a subscriber got {} chunks, out of order or duplicated", got.len());
            done += 1;
        }
        println!(
            "{SUBSCRIBERS} subscribers x {} publishes: opened {opened:?}, published {:?}, all delivered {:?}",
            MESSAGES + 1,
            published - opened,
            start.elapsed() - opened
        );
    });
    rt.shutdown_timeout(Duration::from_secs(2));
    drop(proxy);
}
