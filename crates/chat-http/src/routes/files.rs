//! `POST /files` (multipart upload) and `GET /files/:id` (download as an attachment).
//!
//! The upload is read field by field; the `file` part is collected while its size is checked
//! chunk by chunk, so nothing over the cap (`MAX_UPLOAD_BYTES`) is ever held in memory (413).
//! The content type is detected here from the magic bytes ([`detect_content_type`]), never
//! taken from the client, and only a short allowlist of passive types is ever served as
//! itself; everything else (HTML, SVG, XML, scripts, unknown) is `application/octet-stream`.
//! Downloads always carry `Content-Disposition: attachment`, `X-Content-Type-Options:
//! nosniff` and `Content-Security-Policy: sandbox; default-src 'none'`.
//!
//! A download is streamed: the body is decrypted chunk by chunk as it comes out of the blob
//! store and sent as it is, never held whole, with `Content-Length` = the plaintext size. What
//! fails before the first piece (an unreadable key, a missing blob, a first chunk that does
//! not authenticate) is an ordinary `500 internal`. A later chunk that fails authentication
//! (or a store that fails mid-way) aborts the response: the connection is closed short of
//! `Content-Length`, so the client sees a truncated body, never unauthenticated bytes.

use actix_multipart::{Field, Multipart};
use actix_web::body::SizedStream;
use actix_web::http::header;
use actix_web::{HttpResponse, get, post, web};
use chat_domain::error::DomainError;
use chat_domain::file::{FileRecord, UploadFile};
use chat_domain::ids::{ConversationId, FileId, WorkspaceId};
use chat_domain::realtime::RateKind;
use chat_protocol as wire;
use futures_util::StreamExt;
use uuid::Uuid;

use super::created;
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};

/// Types served as themselves: passive formats a browser will not run script from. Anything
/// else is served (and reported) as `application/octet-stream`.
const SERVED_AS_IS: [&str; 15] = [
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/bmp",
    "image/avif",
    "application/pdf",
    "text/plain",
    "audio/mpeg",
    "audio/ogg",
    "audio/x-wav",
    "audio/x-flac",
    "video/mp4",
    "video/webm",
    "application/zip",
];

const OCTET_STREAM: &str = "application/octet-stream";

/// The longest value of the `workspaceId` / `conversationId` parts we read.
const ID_FIELD_LIMIT: usize = 64;

/// The content type of `bytes` from their magic numbers (`infer`), restricted to
/// [`SERVED_AS_IS`]; UTF-8 text with no magic is `text/plain` unless it starts like markup.
#[must_use]
pub(crate) fn detect_content_type(bytes: &[u8]) -> &'static str {
    if let Some(kind) = infer::get(bytes) {
        let mime = kind.mime_type();
        return SERVED_AS_IS.iter().find(|t| **t == mime).copied().unwrap_or(OCTET_STREAM);
    }
    match std::str::from_utf8(bytes) {
        Ok(text) if !text.contains('\0') && !text.trim_start().starts_with('<') => "text/plain",
        _ => OCTET_STREAM,
    }
}

/// `attachment; filename="<ASCII fallback>"; filename*=UTF-8''<RFC 8187 percent-encoding>`.
fn content_disposition(name: &str) -> String {
    let fallback: String =
        name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect();
    let mut encoded = String::with_capacity(name.len() * 3);
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

pub(crate) fn info(f: &FileRecord) -> wire::FileInfo {
    wire::FileInfo {
        id: f.id.as_uuid(),
        name: f.name.as_str().to_owned(),
        content_type: f.content_type.clone(),
        size: f.size,
        conversation_id: f.conversation_id.as_uuid(),
        created_at: f.created_at,
    }
}

fn multipart_error(e: &actix_multipart::MultipartError) -> ApiError {
    ApiError::bad_request(format!("malformed multipart body: {e}"))
}

/// Reads a small text part (an id).
async fn read_id(field: &mut Field, name: &'static str) -> ApiResult<Uuid> {
    let mut buf = Vec::new();
    while let Some(chunk) = field.next().await {
        let chunk = chunk.map_err(|e| multipart_error(&e))?;
        if buf.len() + chunk.len() > ID_FIELD_LIMIT {
            return Err(DomainError::invalid(name, "not a UUID").into());
        }
        buf.extend_from_slice(&chunk);
    }
    std::str::from_utf8(&buf)
        .ok()
        .and_then(|s| Uuid::parse_str(s.trim()).ok())
        .ok_or_else(|| DomainError::invalid(name, "not a UUID").into())
}

/// Collects the `file` part up to `max` bytes; `None` when it is larger (the rest of the part
/// is read and dropped, up to another `max` bytes, so the client can read the 413).
async fn read_file(field: &mut Field, max: usize) -> ApiResult<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    let mut seen = 0_usize;
    while let Some(chunk) = field.next().await {
        let chunk = chunk.map_err(|e| multipart_error(&e))?;
        seen = seen.saturating_add(chunk.len());
        if seen > max {
            buf = Vec::new();
            if seen > max.saturating_mul(2) {
                break;
            }
        } else {
            buf.extend_from_slice(&chunk);
        }
    }
    Ok((seen <= max).then_some(buf))
}

/// Uploads a file into a conversation the caller may post in (multipart: `file`,
/// `workspaceId`, `conversationId`). Stored encrypted under a fresh per-file key.
#[utoipa::path(tag = "files",
    request_body(content_type = "multipart/form-data", description = "parts `file`, `workspaceId`, `conversationId`"),
    responses((status = 201, body = wire::FileInfo), (status = 400), (status = 403), (status = 404), (status = 409),
        (status = 413), (status = 422), (status = 429)),
    security(("bearer" = [])))]
#[post("/files")]
pub(crate) async fn upload(state: web::Data<AppState>, caller: Caller, mut form: Multipart) -> ApiResult<HttpResponse> {
    let max = state.chat.files.max_bytes();
    let (mut workspace, mut conversation, mut file) = (None, None, None);
    while let Some(field) = form.next().await {
        let mut field = field.map_err(|e| multipart_error(&e))?;
        match field.name().unwrap_or_default() {
            "workspaceId" if workspace.is_none() => workspace = Some(read_id(&mut field, "workspaceId").await?),
            "conversationId" if conversation.is_none() => {
                conversation = Some(read_id(&mut field, "conversationId").await?);
            }
            "file" if file.is_none() => {
                let name = field.content_disposition().and_then(|cd| cd.get_filename()).unwrap_or_default().to_owned();
                let Some(bytes) = read_file(&mut field, max).await? else {
                    return Err(DomainError::TooLarge { field: "file", max }.into());
                };
                file = Some((name, bytes));
            }
            other => return Err(ApiError::bad_request(format!("unexpected part {other:?}"))),
        }
    }
    let workspace = workspace.ok_or_else(|| DomainError::invalid("workspaceId", "required"))?;
    let conversation = conversation.ok_or_else(|| DomainError::invalid("conversationId", "required"))?;
    let (name, bytes) = file.ok_or_else(|| DomainError::invalid("file", "required"))?;
    let upload = UploadFile {
        workspace_id: WorkspaceId::from_uuid(workspace),
        conversation_id: ConversationId::from_uuid(conversation),
        name,
        content_type: detect_content_type(&bytes).to_owned(),
        bytes,
    };
    let result = state.chat.files.upload(caller.0, upload).await;
    if matches!(result, Err(DomainError::RateLimited { .. })) {
        state.metrics.rate_limited(RateKind::Uploads);
    }
    Ok(created(&info(&result?)))
}

/// Downloads a file (members of its conversation only; anyone else 404), always as an
/// attachment, sandboxed, never sniffed; streamed as it is decrypted (see the module docs).
#[utoipa::path(tag = "files", responses((status = 200, content_type = "application/octet-stream"), (status = 404)),
    security(("bearer" = [])))]
#[get("/files/{id}")]
pub(crate) async fn download(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let id = FileId::from_uuid(*id);
    let (record, body) = state.chat.files.download(caller.0, id).await?;
    let served = SERVED_AS_IS.iter().find(|t| **t == record.content_type).copied().unwrap_or(OCTET_STREAM);
    let content_type = if served == "text/plain" { "text/plain; charset=utf-8" } else { served };
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CONTENT_DISPOSITION, content_disposition(record.name.as_str())))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CONTENT_SECURITY_POLICY, "sandbox; default-src 'none'"))
        .insert_header((header::CACHE_CONTROL, "private, no-store"))
        .body(SizedStream::new(record.size, body.map(move |piece| aborting(id, piece)))))
}

/// A piece of a download's body, or the error that aborts the response (logged with its
/// cause chain: the client only sees the connection close early).
fn aborting(id: FileId, piece: Result<Vec<u8>, DomainError>) -> Result<bytes::Bytes, DomainError> {
    piece.map(bytes::Bytes::from).inspect_err(|err| {
        let mut chain = String::new();
        let mut source = std::error::Error::source(err);
        while let Some(cause) = source {
            chain.push_str(": ");
            chain.push_str(&cause.to_string());
            source = cause.source();
        }
        tracing::error!(file = %id, cause = %chain, "download aborted mid-stream");
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

    #[test]
    fn types_come_from_magic_bytes_and_only_passive_ones_are_kept() {
        assert_eq!(detect_content_type(PNG), "image/png");
        assert_eq!(detect_content_type(b"%PDF-1.7\n"), "application/pdf");
        assert_eq!(detect_content_type(b"hello, world\n"), "text/plain");
        assert_eq!(detect_content_type(b"<!DOCTYPE html><script>alert(1)</script>"), OCTET_STREAM);
        assert_eq!(detect_content_type(b"  <svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>"), OCTET_STREAM);
        assert_eq!(detect_content_type(b"<?xml version='1.0'?><svg/>"), OCTET_STREAM);
        assert_eq!(detect_content_type(b"#!/bin/sh\nrm -rf /\n"), OCTET_STREAM);
        assert_eq!(detect_content_type(b"\x00\x01\x02\xff"), OCTET_STREAM);
        assert_eq!(detect_content_type(b"MZ\x90\x00\x03\x00\x00\x00"), OCTET_STREAM);
        assert_eq!(detect_content_type(b""), "text/plain");
    }

    #[test]
    fn the_disposition_is_an_attachment_with_an_encoded_name() {
        assert_eq!(
            content_disposition("rapport final \"v2\".pdf"),
            "attachment; filename=\"rapport final _v2_.pdf\"; filename*=UTF-8''rapport%20final%20%22v2%22.pdf"
        );
        assert_eq!(
            content_disposition("été;\r\nX: y.txt"),
            "attachment; filename=\"_t_;__X: y.txt\"; filename*=UTF-8''%C3%A9t%C3%A9%3B%0D%0AX%3A%20y.txt"
        );
    }
}
