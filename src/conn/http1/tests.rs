use super::*;

fn head(text: &str) -> Head {
    let (head, used) = parse_head(text.as_bytes())
        .expect("parses")
        .expect("complete");
    assert_eq!(used, text.len());
    head
}

#[test]
fn a_boot_clients_get_is_parsed_whole() {
    // What iPXE sends for a kernel.
    let h = head("GET /debian/linux?x=1 HTTP/1.1\r\nConnection: keep-alive\r\nUser-Agent: iPXE/1.21.1\r\nHost: 10.0.0.1:8080\r\n\r\n");
    assert_eq!(h.req.method(), Method::GET);
    assert_eq!(h.req.uri().path(), "/debian/linux");
    assert_eq!(h.req.uri().query(), Some("x=1"));
    assert_eq!(h.req.version(), Version::HTTP_11);
    assert_eq!(h.req.headers()["host"], "10.0.0.1:8080");
    assert!(h.keep_alive);
    assert!(!h.has_body);
}

#[test]
fn keep_alive_follows_the_version_and_the_connection_header() {
    assert!(head("GET / HTTP/1.1\r\n\r\n").keep_alive);
    assert!(!head("GET / HTTP/1.1\r\nConnection: foo, Close\r\n\r\n").keep_alive);
    assert!(!head("GET / HTTP/1.0\r\n\r\n").keep_alive);
    assert!(head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
}

#[test]
fn a_partial_head_waits_and_pipelined_heads_come_one_at_a_time() {
    assert!(parse_head(b"GET / HTTP/1.1\r\nHost: a\r\n")
        .unwrap()
        .is_none());
    let two = b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
    let (first, used) = parse_head(two).unwrap().unwrap();
    assert_eq!(first.req.uri().path(), "/a");
    let (second, rest) = parse_head(&two[used..]).unwrap().unwrap();
    assert_eq!(second.req.uri().path(), "/b");
    assert_eq!(used + rest, two.len());
}

#[test]
fn bodies_are_noticed_and_bad_lengths_refused() {
    assert!(head("PUT /x HTTP/1.1\r\nContent-Length: 5\r\n\r\n").has_body);
    assert!(!head("GET /x HTTP/1.1\r\nContent-Length: 0\r\n\r\n").has_body);
    assert!(head("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").has_body);
    for bad in [
        &b"PUT /x HTTP/1.1\r\nContent-Length: lots\r\n\r\n"[..],
        b"PUT /x HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
        // Two lengths: where does the next request start? (request smuggling)
        b"GET /x HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 20\r\n\r\n",
        b"GET /x HTTP/1.1\r\nContent-Length: 0, 20\r\n\r\n",
    ] {
        assert_eq!(
            parse_head(bad).unwrap_err(),
            HeadError::Malformed,
            "{bad:?}"
        );
    }
}

#[test]
fn garbage_and_oversized_heads_are_refused() {
    for bad in [
        &b"\x01\x02 not http\r\n\r\n"[..],
        b"GET / HTTP/2.0\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
    ] {
        assert_eq!(
            parse_head(bad).unwrap_err(),
            HeadError::Malformed,
            "{bad:?}"
        );
    }
    // Too long while still incomplete, and too many lines.
    let long = format!("GET / HTTP/1.1\r\nX-Pad: {}", "a".repeat(MAX_HEAD));
    assert_eq!(
        parse_head(long.as_bytes()).unwrap_err(),
        HeadError::TooLarge
    );
    let many = format!(
        "GET / HTTP/1.1\r\n{}\r\n",
        "X: y\r\n".repeat(MAX_HEADERS + 1)
    );
    assert_eq!(
        parse_head(many.as_bytes()).unwrap_err(),
        HeadError::TooLarge
    );
    assert_eq!(HeadError::TooLarge.status(), 431);
    assert_eq!(HeadError::Malformed.status(), 400);
}

#[test]
fn response_heads_carry_length_date_and_connection() {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    // A router's hop-by-hop headers are the engine's to decide.
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    let text = String::from_utf8(render_head(StatusCode::OK, &headers, 12, true)).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("\r\ncontent-type: text/plain\r\n"), "{text}");
    assert!(text.contains("\r\ncontent-length: 12\r\n"), "{text}");
    assert!(text.contains("\r\ndate: "), "{text}");
    assert!(
        text.ends_with("\r\nconnection: keep-alive\r\n\r\n"),
        "{text}"
    );
    assert!(!text.contains("upgrade"), "{text}");

    // A Content-Length the router set (a HEAD's) is kept, not doubled.
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("300000"));
    let text = String::from_utf8(render_head(StatusCode::NOT_FOUND, &headers, 0, false)).unwrap();
    assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"), "{text}");
    assert_eq!(text.matches("content-length").count(), 1, "{text}");
    assert!(text.contains("content-length: 300000\r\n"), "{text}");
    assert!(text.ends_with("\r\nconnection: close\r\n\r\n"), "{text}");

    // A 304 gets no length of its own.
    let text = String::from_utf8(render_head(
        StatusCode::NOT_MODIFIED,
        &HeaderMap::new(),
        0,
        true,
    ))
    .unwrap();
    assert!(!text.contains("content-length"), "{text}");
}

#[test]
fn the_end_of_a_head_is_found_in_either_line_ending() {
    assert!(ends_head(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
    assert!(ends_head(b"GET / HTTP/1.1\nHost: a\n\n"));
    assert!(ends_head(b"\n\r\n"));
    assert!(!ends_head(b"GET / HTTP/1.1\r\nHost: a\r\n"));
    assert!(!ends_head(b""));
}
