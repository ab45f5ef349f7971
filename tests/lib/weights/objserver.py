#!/usr/bin/env python3
"""objserver.py — a loopback test server for the weights tests.

  objserver.py fault PORT ROOT   files of ROOT with faults chosen by the first path segment:
        /ok/P, /stall-once/P (the first GET of each range sends half, then stalls),
        /short-once/P (the first GET of each range sends half its Content-Length and closes),
        /short-always/P, /wrong-range/P (answers 200 with the whole file to any Range),
        /first-range/P (answers every Range with the file's first bytes, labelled honestly
        "bytes 0-N/SIZE"), /replaced/P (the first GET gets P with ETag "v1", every later
        one P.v2 with ETag "v2", as if P were replaced during the download; If-Match is
        honoured with 412), /replaced-slow/P (the same, the v1 answer a second late);
        a path ending in / is an nginx-style JSON listing, or the folder's .listing.json
        served as it is (names a real server would never list).
  objserver.py s3 PORT ROOT      S3 path-style: ListObjectsV2 (2 keys a page, continuation
        tokens), GET with Range, PUT; every request's Signature V4 is checked against
        AWS_SECRET_ACCESS_KEY (403 SignatureDoesNotMatch otherwise).
  objserver.py gcs PORT ROOT     GCS JSON API: list (2 items a page, pageToken), alt=media
        with Range, uploadType=media; requires "Authorization: Bearer $GCS_TOKEN".
Every wait is bounded (a stall lasts at most 60 s)."""
import base64, hashlib, hmac, json, os, sys, threading, time, urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODE, PORT, ROOT = sys.argv[1], int(sys.argv[2]), sys.argv[3]
seen = set()
lock = threading.Lock()

def first_time(key):
    with lock:
        if key in seen:
            return False
        seen.add(key)
        return True

def safe(path):
    p = os.path.normpath(os.path.join(ROOT, path.lstrip('/')))
    if not p.startswith(os.path.normpath(ROOT)):
        raise ValueError('escape')
    return p

def parse_range(h, size):
    if not h or not h.startswith('bytes='):
        return None
    a, b = h[6:].split('-')
    a = int(a); b = int(b) if b else size - 1
    return a, min(b, size - 1)

class H(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def log_message(self, *a):
        pass

    def send_bytes(self, status, body, headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(body)

    def send_file(self, path, fault=None):
        etag = None
        if fault in ('replaced', 'replaced-slow'):
            etag = '"v1"' if first_time(('replaced', path)) else '"v2"'
            if etag == '"v2"':
                path += '.v2'
            elif fault == 'replaced-slow':
                time.sleep(1)
            im = self.headers.get('If-Match')
            if im is not None and im != etag:
                return self.send_bytes(412, b'precondition failed')
        data = open(path, 'rb').read()
        size = len(data)
        rg = parse_range(self.headers.get('Range'), size)
        if fault == 'wrong-range' or rg is None:
            return self.send_bytes(200, data, [('ETag', etag or '"%s"' % hashlib.md5(data).hexdigest())])
        a, b = rg
        if fault == 'first-range':
            a, b = 0, b - a
        part = data[a:b + 1]
        self.send_response(206)
        if etag:
            self.send_header('ETag', etag)
        self.send_header('Content-Range', 'bytes %d-%d/%d' % (a, b, size))
        self.send_header('Content-Length', str(len(part)))
        self.end_headers()
        key = (self.path, a)
        if fault == 'stall-once' and first_time(key):
            self.wfile.write(part[:len(part) // 2]); self.wfile.flush()
            time.sleep(60)
            return
        if fault == 'short-always' or (fault == 'short-once' and first_time(key)):
            self.wfile.write(part[:len(part) // 2]); self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(part)

    # ------------------------------------------------------------ fault
    def fault_get(self):
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        seg = path.strip('/').split('/', 1)
        fault, rest = seg[0], (seg[1] if len(seg) > 1 else '')
        p = safe(rest)
        if path.endswith('/'):
            if not os.path.isdir(p):
                return self.send_bytes(404, b'not found')
            if os.path.isfile(os.path.join(p, '.listing.json')):
                raw = open(os.path.join(p, '.listing.json'), 'rb').read()
                return self.send_bytes(200, raw, [('Content-Type', 'application/json')])
            out = []
            for n in sorted(os.listdir(p)):
                full = os.path.join(p, n)
                if os.path.isdir(full):
                    out.append({'name': n, 'type': 'directory', 'mtime': 'x'})
                else:
                    out.append({'name': n, 'type': 'file', 'mtime': 'x', 'size': os.path.getsize(full)})
            return self.send_bytes(200, json.dumps(out).encode(), [('Content-Type', 'application/json')])
        if not os.path.isfile(p):
            return self.send_bytes(404, b'not found')
        self.send_file(p, fault)

    # ------------------------------------------------------------ s3
    def s3_check(self, payload_hash):
        auth = self.headers.get('Authorization', '')
        secret = os.environ['AWS_SECRET_ACCESS_KEY']
        try:
            cred = auth.split('Credential=')[1].split(',')[0]
            signed = auth.split('SignedHeaders=')[1].split(',')[0].strip().split(';')
            sig = auth.split('Signature=')[1].strip()
        except IndexError:
            return False
        _, date, region, service, _ = cred.split('/')
        u = urllib.parse.urlsplit(self.path)
        q = '&'.join(sorted(x if '=' in x else x + '=' for x in u.query.split('&') if x)) if u.query else ''
        canon = '\n'.join([self.command, u.path, q] +
                          ['%s:%s' % (h, ' '.join(self.headers.get(h, '').split())) for h in signed] +
                          ['', ';'.join(signed), self.headers.get('x-amz-content-sha256', '')])
        sts = '\n'.join(['AWS4-HMAC-SHA256', self.headers.get('x-amz-date', ''),
                         '%s/%s/%s/aws4_request' % (date, region, service),
                         hashlib.sha256(canon.encode()).hexdigest()])
        k = ('AWS4' + secret).encode()
        for m in (date, region, service, 'aws4_request'):
            k = hmac.new(k, m.encode(), hashlib.sha256).digest()
        good = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(good, sig) and 'host' in signed

    def s3(self):
        body = b''
        if self.command == 'PUT':
            body = self.rfile.read(int(self.headers.get('Content-Length', '0')))
        if not self.s3_check(body):
            return self.send_bytes(403, b'<Error><Code>SignatureDoesNotMatch</Code></Error>')
        u = urllib.parse.urlsplit(self.path)
        parts = u.path.lstrip('/').split('/', 1)
        bucket = urllib.parse.unquote(parts[0])
        if len(parts) == 1 or parts[1] == '':
            qs = urllib.parse.parse_qs(u.query)
            prefix = qs.get('prefix', [''])[0]
            start = qs.get('continuation-token', [''])[0]
            keys = []
            broot = safe(bucket)
            for d, _, fs in os.walk(broot):
                for f in fs:
                    keys.append(os.path.relpath(os.path.join(d, f), broot))
            keys = sorted(k for k in keys if k.startswith(prefix) and k > start)
            page, more = keys[:2], len(keys) > 2
            xml = ['<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>%s</Name>' % bucket]
            for k in page:
                data = open(os.path.join(broot, k), 'rb').read()
                xml.append('<Contents><Key>%s</Key><Size>%d</Size><ETag>&quot;%s&quot;</ETag></Contents>' %
                           (k.replace('&', '&amp;'), len(data), hashlib.md5(data).hexdigest()))
            xml.append('<IsTruncated>%s</IsTruncated>' % ('true' if more else 'false'))
            if more:
                xml.append('<NextContinuationToken>%s</NextContinuationToken>' % page[-1])
            xml.append('</ListBucketResult>')
            return self.send_bytes(200, ''.join(xml).encode(), [('Content-Type', 'application/xml')])
        p = safe(bucket + '/' + urllib.parse.unquote(parts[1]))
        if self.command == 'PUT':
            os.makedirs(os.path.dirname(p), exist_ok=True)
            open(p, 'wb').write(body)
            return self.send_bytes(200, b'', [('ETag', '"%s"' % hashlib.md5(body).hexdigest())])
        if not os.path.isfile(p):
            return self.send_bytes(404, b'<Error><Code>NoSuchKey</Code></Error>')
        self.send_file(p)

    # ------------------------------------------------------------ gcs
    def gcs(self):
        if self.headers.get('Authorization') != 'Bearer ' + os.environ.get('GCS_TOKEN', ''):
            return self.send_bytes(401, b'{"error":{"code":401}}')
        u = urllib.parse.urlsplit(self.path)
        qs = urllib.parse.parse_qs(u.query)
        seg = u.path.split('/')
        if u.path.startswith('/upload/storage/v1/b/'):
            bucket = urllib.parse.unquote(seg[5])
            name = qs['name'][0]
            body = self.rfile.read(int(self.headers.get('Content-Length', '0')))
            p = safe(bucket + '/' + name)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            open(p, 'wb').write(body)
            return self.send_bytes(200, json.dumps({'name': name, 'size': str(len(body))}).encode())
        bucket = urllib.parse.unquote(seg[4])
        broot = safe(bucket)
        if len(seg) == 6 and seg[5] == 'o':
            prefix = qs.get('prefix', [''])[0]
            start = qs.get('pageToken', [''])[0]
            keys = []
            for d, _, fs in os.walk(broot):
                for f in fs:
                    keys.append(os.path.relpath(os.path.join(d, f), broot))
            keys = sorted(k for k in keys if k.startswith(prefix) and k > start)
            items = []
            for k in keys[:2]:
                data = open(os.path.join(broot, k), 'rb').read()
                items.append({'name': k, 'size': str(len(data)), 'generation': '1',
                              'md5Hash': base64.b64encode(hashlib.md5(data).digest()).decode()})
            out = {'kind': 'storage#objects', 'items': items}
            if len(keys) > 2:
                out['nextPageToken'] = keys[1]
            return self.send_bytes(200, json.dumps(out).encode(), [('Content-Type', 'application/json')])
        name = urllib.parse.unquote('/'.join(seg[6:]))
        p = safe(bucket + '/' + name)
        if qs.get('alt') != ['media'] or not os.path.isfile(p):
            return self.send_bytes(404, b'{"error":{"code":404}}')
        self.send_file(p)

    def route(self):
        try:
            if MODE == 'fault':
                self.fault_get()
            elif MODE == 's3':
                self.s3()
            else:
                self.gcs()
        except (BrokenPipeError, ConnectionResetError):
            pass

    do_GET = do_HEAD = do_PUT = do_POST = route

ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer.handle_error = lambda self, request, client_address: None  # resets are part of the faults
ThreadingHTTPServer(('127.0.0.1', PORT), H).serve_forever()
