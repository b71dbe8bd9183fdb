//! The one place where tollgate writes a response of its own.

use crate::reply::Reply;
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

/// Whether a status never has content (a 204, such as a CORS preflight's answer).
fn no_content(status: u16) -> bool {
    status == 204
}

/// Builds the response header for a reply; a 204 has no content headers.
pub fn response_header(reply: &Reply) -> pingora::Result<ResponseHeader> {
    let mut header = ResponseHeader::build(reply.status, Some(reply.headers.len() + 3))?;
    if !no_content(reply.status) {
        header.insert_header("content-type", "application/json")?;
        header.insert_header("content-length", reply.body.len().to_string())?;
    }
    header.insert_header("cache-control", "no-store")?;
    for (name, value) in &reply.headers {
        header.append_header(name.clone(), value.as_str())?;
    }
    Ok(header)
}

/// Writes `reply` to the downstream and ends the response.
pub async fn write(session: &mut Session, reply: Reply) -> pingora::Result<()> {
    let header = response_header(&reply)?;
    let head_only = session.req_header().method == http::Method::HEAD || no_content(reply.status);
    session
        .write_response_header(Box::new(header), head_only)
        .await?;
    if !head_only {
        session
            .write_response_body(Some(Bytes::from(reply.body)), true)
            .await?;
    }
    Ok(())
}
