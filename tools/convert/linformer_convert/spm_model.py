"""XLM-R's SentencePiece model, rewritten to linformer's special ids (docs/data.md, docs/convert.md).

Hugging Face's XLMRobertaTokenizer puts fairseq's specials first (<s>=0 <pad>=1 </s>=2 <unk>=3),
shifts every other SentencePiece id up by one and appends <mask>; linformer's tokenizer wants
<pad>=0 <s>=1 </s>=2 <unk>=3 <mask>=4 as the model's own pieces. So the new model lists those
five pieces, then the original pieces from id 3 on; `hf_ids` says which Hugging Face id each new
id is, so the converter reorders the embedding rows to match.

The model is a protobuf (ModelProto); Debian's Python here has no protobuf package, so this file
reads and writes the few fields it touches itself: ModelProto.pieces (field 1: piece = 1 string,
score = 2 float, type = 3 enum) and TrainerSpec's unk/bos/eos/pad ids (fields 40-43, appended so
that they override the old values, as protobuf's "last one wins" rule says). Every other field is
copied byte for byte.
"""
import struct

from .errors import ConvertError

NORMAL, UNKNOWN, CONTROL, USER_DEFINED = 1, 2, 3, 4


def _varint(buf, pos):
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 70:
            raise ValueError("varint too long")


def _enc_varint(v):
    if v < 0:
        v += 1 << 64
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _fields(buf):
    """[(field number, wire type, value bytes or int, raw bytes of the whole field)]"""
    pos, out = 0, []
    while pos < len(buf):
        start = pos
        tag, pos = _varint(buf, pos)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            val, pos = _varint(buf, pos)
        elif wire == 1:
            val, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            val, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            val, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if pos > len(buf):
            raise ValueError("truncated field")
        out.append((field, wire, val, buf[start:pos]))
    return out


def _piece(buf):
    piece, score, kind = "", 0.0, NORMAL
    for field, wire, val, _ in _fields(buf):
        if field == 1 and wire == 2:
            piece = bytes(val).decode("utf-8")
        elif field == 2 and wire == 5:
            (score,) = struct.unpack("<f", val)
        elif field == 3 and wire == 0:
            kind = val
    return piece, score, kind


def _enc_piece(piece, score, kind):
    p = piece.encode("utf-8")
    body = b"\x0a" + _enc_varint(len(p)) + p + b"\x15" + struct.pack("<f", score) + b"\x18" + _enc_varint(kind)
    return b"\x0a" + _enc_varint(len(body)) + body


def read_pieces(data, where):
    try:
        return [_piece(val) for field, wire, val, _ in _fields(data) if field == 1 and wire == 2]
    except (ValueError, UnicodeDecodeError) as e:
        raise ConvertError(f"{where}: not a SentencePiece model ({e})") from None


def xlmr_to_linformer(data, hf_vocab_size, where):
    """(new model bytes, hf_ids) where hf_ids[new id] = the Hugging Face id of that token."""
    try:
        fields = _fields(data)
        pieces = [_piece(val) for field, wire, val, _ in fields if field == 1 and wire == 2]
    except (ValueError, UnicodeDecodeError) as e:
        raise ConvertError(f"{where}: not a SentencePiece model ({e})") from None
    expect = [("<unk>", UNKNOWN), ("<s>", CONTROL), ("</s>", CONTROL)]
    got = [(p, k) for p, _, k in pieces[:3]]
    if got != expect:
        raise ConvertError(f"{where}: not XLM-R's SentencePiece layout: its first pieces are {got}, "
                           f"expected {expect} (ids 0, 1, 2)")
    P = len(pieces)
    if hf_vocab_size != P + 2:
        raise ConvertError(f"{where}: {P} pieces do not give the model's vocab_size {hf_vocab_size} the way "
                           f"XLM-R does ({P} + 1 for the fairseq offset + 1 for <mask> = {P + 2})")
    new = [("<pad>", 0.0, CONTROL), ("<s>", 0.0, CONTROL), ("</s>", 0.0, CONTROL), ("<unk>", 0.0, UNKNOWN),
           ("<mask>", 0.0, USER_DEFINED)] + pieces[3:]
    hf_ids = [1, 0, 2, 3, hf_vocab_size - 1] + [i + 1 for i in range(3, P)]
    out = bytearray()
    for p in new:
        out += _enc_piece(*p)
    for field, wire, val, raw in fields:
        if field == 1 and wire == 2:
            continue
        if field == 2 and wire == 2:  # TrainerSpec: append the new special ids
            spec = bytes(val)
            for num, v in ((40, 3), (41, 1), (42, 2), (43, 0)):  # unk, bos, eos, pad
                spec += _enc_varint(num << 3) + _enc_varint(v)
            out += b"\x12" + _enc_varint(len(spec)) + spec
        else:
            out += raw
    return bytes(out), hf_ids
