// TFRecord framing, as TensorFlow's record_writer.cc writes it and every TensorBoard reads it:
//   uint64 length (little-endian) | uint32 masked_crc32c(length bytes) | data | uint32 masked_crc32c(data)
// with mask(c) = ((c >>> 15) | (c << 17)) + 0xa282ead8 (mod 2^32). CRC-32C (Castagnoli) comes from
// @aws-crypto/crc32c (pure JavaScript).
import { crc32c } from '@aws-crypto/crc32c';

const MASK_DELTA = 0xa282ead8;

export function maskedCrc32c(data: Uint8Array): number {
  const c = crc32c(data) >>> 0;
  return ((((c >>> 15) | (c << 17)) >>> 0) + MASK_DELTA) >>> 0;
}

/** One framed record. */
export function frameRecord(data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length + 4);
  out.writeBigUInt64LE(BigInt(data.length), 0);
  out.writeUInt32LE(maskedCrc32c(out.subarray(0, 8)), 8);
  out.set(data, 12);
  out.writeUInt32LE(maskedCrc32c(data), 12 + data.length);
  return out;
}

export interface FramedRecord {
  offset: number; // where the record starts in the buffer
  end: number;    // one past its last byte
  data: Buffer;
}

/**
 * The whole records at the start of `buf`, in order, and where the first incomplete or corrupt
 * one begins (`validBytes`; buf.length when all are whole). A torn tail, left by a process killed
 * mid-write, is where reading stops; so is the first bad checksum (`corrupt`).
 */
export function readRecords(buf: Buffer): { records: FramedRecord[]; validBytes: number; corrupt: boolean } {
  const records: FramedRecord[] = [];
  let off = 0;
  while (off + 12 <= buf.length) {
    const len = buf.readBigUInt64LE(off);
    if (buf.readUInt32LE(off + 8) !== maskedCrc32c(buf.subarray(off, off + 8))) return { records, validBytes: off, corrupt: true };
    if (len > BigInt(buf.length - off - 16)) return { records, validBytes: off, corrupt: false };
    const n = Number(len);
    const data = buf.subarray(off + 12, off + 12 + n);
    if (buf.readUInt32LE(off + 12 + n) !== maskedCrc32c(data)) return { records, validBytes: off, corrupt: true };
    records.push({ offset: off, end: off + 16 + n, data });
    off += 16 + n;
  }
  return { records, validBytes: off, corrupt: false };
}
