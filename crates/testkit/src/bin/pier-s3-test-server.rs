//! `pier-s3-test-server ROOT [PORT]`: the tests' S3 server (`s3s-fs`, signatures checked) as a
//! process, for the SDK suite. Prints `listening on http://127.0.0.1:PORT` once it accepts.

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let Some(root) = args.next() else {
        eprintln!("usage: pier-s3-test-server ROOT [PORT]");
        std::process::exit(2);
    };
    let port = args.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let server = pier_testkit::s3::S3Server::start_at(std::path::Path::new(&root), port).await;
    println!("listening on {}", server.endpoint);
    println!(
        "bucket {} access key {} secret {}",
        pier_testkit::s3::BUCKET,
        pier_testkit::s3::ACCESS_KEY,
        pier_testkit::s3::SECRET_KEY
    );
    std::future::pending::<()>().await;
}
