//! `chat-server`: load settings, start logging, build the application, serve until a signal.

#![forbid(unsafe_code)]

use chat_server::{Application, LogFormat, Settings};
use tracing_subscriber::EnvFilter;

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = Settings::from_env()?;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    match settings.log_format {
        LogFormat::Json => tracing_subscriber::fmt().json().with_env_filter(filter).init(),
        LogFormat::Text => tracing_subscriber::fmt().with_env_filter(filter).init(),
    }
    let app = Application::build(settings).await?;
    tracing::info!(port = app.port(), "chat-server listening");
    app.run_until_stopped().await?;
    tracing::info!("chat-server stopped");
    Ok(())
}
