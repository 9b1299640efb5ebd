// A small, bounded TLS ClientHello parser: finds the server_name extension in the bytes a client
// sent first, so TLS passthrough can decide without terminating TLS. Never reads past the buffer.

/** A ClientHello larger than this (record header included) is refused rather than buffered. */
export const MAX_CLIENT_HELLO_BYTES = 16_384 + 5;

export type SniResult =
  | { readonly kind: 'need-more' }
  | { readonly kind: 'invalid'; readonly why: string }
  | { readonly kind: 'done'; readonly serverName?: string };

/**
 * Parse what has arrived so far. The ClientHello may span several TLS records; this version
 * handles the common case of a ClientHello inside the first record (up to 16 KiB), which every
 * mainstream client sends.
 */
export function parseClientHello(buf: Buffer): SniResult {
  if (buf.length < 5) return { kind: 'need-more' };
  if (buf[0] !== 0x16) return { kind: 'invalid', why: 'not a TLS handshake record' };
  if (buf[1] !== 0x03) return { kind: 'invalid', why: 'unknown record version' };
  const recordLen = buf.readUInt16BE(3);
  if (recordLen === 0 || recordLen > 16_384) return { kind: 'invalid', why: 'bad record length' };
  if (buf.length < 5 + recordLen) return { kind: 'need-more' };
  const rec = buf.subarray(5, 5 + recordLen);
  const r = new Reader(rec);
  if (r.u8() !== 0x01) return { kind: 'invalid', why: 'not a ClientHello' };
  const hsLen = r.u24();
  if (hsLen === undefined || hsLen > rec.length - 4) return { kind: 'invalid', why: 'ClientHello spans records' };
  const body = new Reader(rec.subarray(4, 4 + hsLen));
  body.skip(2 + 32); // client_version, random
  body.skipVec(1); // session_id
  body.skipVec(2); // cipher_suites
  body.skipVec(1); // compression_methods
  if (body.failed) return { kind: 'invalid', why: 'truncated ClientHello' };
  if (body.remaining === 0) return { kind: 'done' }; // no extensions at all
  const extLen = body.u16();
  if (extLen === undefined || extLen > body.remaining) return { kind: 'invalid', why: 'bad extensions length' };
  const exts = new Reader(body.take(extLen)!);
  while (exts.remaining > 0) {
    const type = exts.u16();
    const len = exts.u16();
    if (type === undefined || len === undefined || len > exts.remaining) return { kind: 'invalid', why: 'bad extension' };
    const data = exts.take(len)!;
    if (type !== 0x0000) continue;
    const sn = new Reader(data);
    const listLen = sn.u16();
    if (listLen === undefined || listLen > sn.remaining) return { kind: 'invalid', why: 'bad server_name list' };
    const list = new Reader(sn.take(listLen)!);
    while (list.remaining > 0) {
      const nameType = list.u8();
      const nameLen = list.u16();
      if (nameType === undefined || nameLen === undefined || nameLen > list.remaining) return { kind: 'invalid', why: 'bad server_name entry' };
      const name = list.take(nameLen)!;
      if (nameType === 0) {
        // host_name is ASCII (RFC 6066); anything else is refused rather than normalised.
        for (const b of name) if (b < 0x21 || b > 0x7e) return { kind: 'invalid', why: 'non-ASCII server_name' };
        return { kind: 'done', serverName: name.toString('ascii') };
      }
    }
    return { kind: 'done' };
  }
  return { kind: 'done' };
}

class Reader {
  private pos = 0;
  public failed = false;
  constructor(private readonly buf: Buffer) {}
  public get remaining(): number {
    return this.failed ? 0 : this.buf.length - this.pos;
  }
  public u8(): number | undefined {
    if (this.remaining < 1) return this.fail();
    return this.buf[this.pos++];
  }
  public u16(): number | undefined {
    if (this.remaining < 2) return this.fail();
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  public u24(): number | undefined {
    if (this.remaining < 3) return this.fail();
    const v = this.buf.readUIntBE(this.pos, 3);
    this.pos += 3;
    return v;
  }
  public skip(n: number): void {
    if (this.remaining < n) this.fail();
    else this.pos += n;
  }
  public skipVec(lenBytes: 1 | 2): void {
    const n = lenBytes === 1 ? this.u8() : this.u16();
    if (n !== undefined) this.skip(n);
  }
  public take(n: number): Buffer | undefined {
    if (this.remaining < n) return this.fail();
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  private fail(): undefined {
    this.failed = true;
    return undefined;
  }
}
