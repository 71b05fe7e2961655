//! `chat-server`: load settings, start logging, then serve until a signal — or run one of the
//! operator commands of [`chat_server::admin`] (`chat-server --help`).

#![forbid(unsafe_code)]

use chat_server::admin::{self, Command};
use chat_server::{Application, LogFormat, Settings};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let command = Command::parse(std::env::args().skip(1)).unwrap_or_else(|usage| {
        eprintln!("{usage}");
        std::process::exit(2);
    });
    let settings = Settings::from_env()?;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Admin commands print their result on stdout, so their logs go to stderr.
    let writer = if command == Command::Serve {
        BoxMakeWriter::new(std::io::stdout)
    } else {
        BoxMakeWriter::new(std::io::stderr)
    };
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    match settings.log_format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs.init(),
    }
    if command != Command::Serve {
        return admin::run(command, &settings).await;
    }
    let app = Application::build(settings).await?;
    tracing::info!(port = app.port(), "chat-server listening");
    app.run_until_stopped().await?;
    tracing::info!("chat-server stopped");
    Ok(())
}
