package delta

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"net/url"
	"strconv"
	"strings"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/RoaringBitmap/roaring/v2/roaring64"
	"github.com/claimx/claimx-connect/delta/storage"
	"github.com/google/uuid"
)

// DeletionVector is the deletion vector descriptor of an add or remove
// action (PROTOCOL.md, "Deletion Vector Descriptor Schema"): the set of row
// indexes of the data file that are logically deleted.
type DeletionVector struct {
	// StorageType is "u" (relative path from a UUID), "i" (inline) or "p"
	// (absolute path).
	StorageType string `json:"storageType"`
	// PathOrInlineDv is <random prefix><Z85 UUID> ("u"), the Z85 bitmap
	// ("i") or the absolute path ("p").
	PathOrInlineDv string `json:"pathOrInlineDv"`
	// Offset is where the DV starts in its file (absent for inline).
	Offset *int32 `json:"offset,omitempty"`
	// SizeInBytes is the size of the serialized bitmap.
	SizeInBytes int32 `json:"sizeInBytes"`
	// Cardinality is how many rows the DV deletes.
	Cardinality int64 `json:"cardinality"`
	// MaxRowIndex is optional: the largest deleted row index.
	MaxRowIndex *int64 `json:"maxRowIndex,omitempty"`
}

// UniqueID identifies the DV among the DVs of one file:
// storageType+pathOrInlineDv, plus "@offset" when there is an offset.
func (d *DeletionVector) UniqueID() string {
	if d == nil {
		return ""
	}
	id := d.StorageType + d.PathOrInlineDv
	if d.Offset != nil {
		id += "@" + strconv.Itoa(int(*d.Offset))
	}
	return id
}

// dvFilePrefix and dvFileSuffix frame the UUID in a relative DV file name.
const (
	dvFilePrefix = "deletion_vector_"
	dvFileSuffix = ".bin"
)

// RelativePath returns the path, relative to the table root, of a DV of
// storage type "u": <random prefix>/deletion_vector_<uuid>.bin.
func (d *DeletionVector) RelativePath() (string, error) {
	if d.StorageType != "u" {
		return "", fmt.Errorf("deletion vector of storage type %q has no relative path", d.StorageType)
	}
	s := d.PathOrInlineDv
	if len(s) < 20 {
		return "", fmt.Errorf("deletion vector path %q is shorter than a Z85-encoded UUID (20 characters)", s)
	}
	prefix, enc := s[:len(s)-20], s[len(s)-20:]
	raw, err := Z85Decode(enc)
	if err != nil {
		return "", fmt.Errorf("deletion vector path %q: %w", s, err)
	}
	id, err := uuid.FromBytes(raw)
	if err != nil {
		return "", fmt.Errorf("deletion vector path %q: %w", s, err)
	}
	name := dvFilePrefix + id.String() + dvFileSuffix
	if prefix == "" {
		return name, nil
	}
	return prefix + "/" + name, nil
}

// storePath returns the path in store of an on-disk DV ("u" or "p").
func (d *DeletionVector) storePath(store storage.Store) (string, error) {
	switch d.StorageType {
	case "u":
		return d.RelativePath()
	case "p":
		return absoluteToStorePath(store.URI(), d.PathOrInlineDv)
	}
	return "", fmt.Errorf("deletion vector of storage type %q is not stored in a file", d.StorageType)
}

// absoluteToStorePath maps an absolute (URI-encoded) path under the table
// root to a store path; a path outside the table cannot be read through the
// table's store.
func absoluteToStorePath(root, abs string) (string, error) {
	norm := func(s string) string {
		for _, p := range []string{"file://", "file:"} {
			if strings.HasPrefix(s, p) {
				s = strings.TrimPrefix(s, p)
				break
			}
		}
		if strings.HasPrefix(s, "//") { // file:///x was cut to /x, file:////x too
			s = "/" + strings.TrimLeft(s, "/")
		}
		return strings.TrimRight(s, "/")
	}
	r, a := norm(root), norm(abs)
	if !strings.HasPrefix(a, r+"/") {
		return "", fmt.Errorf("deletion vector path %q is outside the table %s", abs, root)
	}
	rel := strings.TrimPrefix(a, r+"/")
	if d, err := url.PathUnescape(rel); err == nil {
		rel = d
	}
	return rel, nil
}

// dvMagic starts a serialized RoaringBitmapArray in the portable format
// (little endian); dvMagicNative starts Delta's older "native" format
// (big endian), which PROTOCOL.md's inline example uses.
const (
	dvMagic       = 1681511377
	dvMagicNative = 1681511376
)

// DecodeRoaringBitmapArray decodes Delta's RoaringBitmapArray: the magic
// number, then a 64-bit roaring bitmap in the portable format (or, for the
// native format, a count and that many size-prefixed 32-bit bitmaps whose
// high 32 bits are their position).
func DecodeRoaringBitmapArray(b []byte) (*roaring64.Bitmap, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("deletion vector bitmap of %d bytes has no magic number", len(b))
	}
	if binary.BigEndian.Uint32(b) == dvMagicNative {
		return decodeNativeBitmapArray(b[4:])
	}
	if m := binary.LittleEndian.Uint32(b); m != dvMagic {
		return nil, fmt.Errorf("deletion vector bitmap has magic number %d, want %d", m, dvMagic)
	}
	bm := roaring64.New()
	if _, err := bm.ReadFrom(bytes.NewReader(b[4:])); err != nil {
		return nil, fmt.Errorf("decoding deletion vector bitmap: %w", err)
	}
	return bm, nil
}

func decodeNativeBitmapArray(b []byte) (*roaring64.Bitmap, error) {
	if len(b) < 4 {
		return nil, errors.New("native deletion vector bitmap has no bitmap count")
	}
	n := int(int32(binary.BigEndian.Uint32(b)))
	b = b[4:]
	if n < 0 || n > len(b)/4 {
		return nil, fmt.Errorf("native deletion vector bitmap claims %d bitmaps in %d bytes", n, len(b))
	}
	out := roaring64.New()
	for i := 0; i < n; i++ {
		if len(b) < 4 {
			return nil, fmt.Errorf("native deletion vector bitmap %d has no size", i)
		}
		size := int64(binary.BigEndian.Uint32(b))
		b = b[4:]
		if size > int64(len(b)) {
			return nil, fmt.Errorf("native deletion vector bitmap %d of %d bytes runs past the end", i, size)
		}
		bm := roaring.New()
		if _, err := bm.ReadFrom(bytes.NewReader(b[:size])); err != nil {
			return nil, fmt.Errorf("decoding native deletion vector bitmap %d: %w", i, err)
		}
		hi := uint64(i) << 32
		it := bm.Iterator()
		for it.HasNext() {
			out.Add(hi | uint64(it.Next()))
		}
		b = b[size:]
	}
	return out, nil
}

// EncodeRoaringBitmapArray is the inverse of DecodeRoaringBitmapArray.
func EncodeRoaringBitmapArray(bm *roaring64.Bitmap) ([]byte, error) {
	var buf bytes.Buffer
	var m [4]byte
	binary.LittleEndian.PutUint32(m[:], dvMagic)
	buf.Write(m[:])
	bm.RunOptimize()
	if _, err := bm.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("encoding deletion vector bitmap: %w", err)
	}
	return buf.Bytes(), nil
}

// EncodeDeletionVectorFile returns a DV file (format version 1) holding
// one bitmap, and the offset of that bitmap's entry, as Spark writes them.
func EncodeDeletionVectorFile(bm *roaring64.Bitmap) (data []byte, offset int32, size int32, err error) {
	bitmap, err := EncodeRoaringBitmapArray(bm)
	if err != nil {
		return nil, 0, 0, err
	}
	out := make([]byte, 0, 1+4+len(bitmap)+4)
	out = append(out, 1)
	out = binary.BigEndian.AppendUint32(out, uint32(len(bitmap)))
	out = append(out, bitmap...)
	out = binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(bitmap))
	return out, 1, int32(len(bitmap)), nil
}

// decodeDVFileEntry extracts and checks the bitmap at offset of a DV file.
func decodeDVFileEntry(data []byte, offset, size int32) ([]byte, error) {
	if len(data) == 0 || data[0] != 1 {
		return nil, errors.New("deletion vector file does not start with format version 1")
	}
	off := int64(offset)
	if off < 0 || off+4 > int64(len(data)) {
		return nil, fmt.Errorf("deletion vector offset %d is outside the file (%d bytes)", offset, len(data))
	}
	n := int64(binary.BigEndian.Uint32(data[off:]))
	if n != int64(size) {
		return nil, fmt.Errorf("deletion vector at offset %d holds %d bytes, the descriptor says %d", offset, n, size)
	}
	end := off + 4 + n
	if end+4 > int64(len(data)) {
		return nil, fmt.Errorf("deletion vector at offset %d (%d bytes) runs past the end of the file (%d bytes)", offset, n, len(data))
	}
	bitmap := data[off+4 : end]
	if want, got := binary.BigEndian.Uint32(data[end:]), crc32.ChecksumIEEE(bitmap); want != got {
		return nil, fmt.Errorf("deletion vector at offset %d: checksum %08x, the file says %08x", offset, got, want)
	}
	return bitmap, nil
}

// ReadDeletionVector loads the deleted row indexes of a DV, checking the
// file checksum and the cardinality.
func ReadDeletionVector(ctx context.Context, store storage.Store, d *DeletionVector) (*roaring64.Bitmap, error) {
	var bitmap []byte
	switch d.StorageType {
	case "i":
		raw, err := Z85Decode(d.PathOrInlineDv)
		if err != nil {
			return nil, fmt.Errorf("inline deletion vector: %w", err)
		}
		if int(d.SizeInBytes) > len(raw) || d.SizeInBytes < 0 {
			return nil, fmt.Errorf("inline deletion vector decodes to %d bytes, the descriptor says %d", len(raw), d.SizeInBytes)
		}
		bitmap = raw[:d.SizeInBytes]
	case "u", "p":
		p, err := d.storePath(store)
		if err != nil {
			return nil, err
		}
		data, err := store.Get(ctx, p)
		if err != nil {
			return nil, fmt.Errorf("reading deletion vector file %s: %w", p, err)
		}
		var off int32
		if d.Offset != nil {
			off = *d.Offset
		}
		bitmap, err = decodeDVFileEntry(data, off, d.SizeInBytes)
		if err != nil {
			return nil, fmt.Errorf("deletion vector file %s: %w", p, err)
		}
	default:
		return nil, fmt.Errorf("deletion vector has unknown storage type %q", d.StorageType)
	}
	bm, err := DecodeRoaringBitmapArray(bitmap)
	if err != nil {
		return nil, err
	}
	if c := int64(bm.GetCardinality()); c != d.Cardinality {
		return nil, fmt.Errorf("deletion vector %s deletes %d rows, the descriptor says %d", d.UniqueID(), c, d.Cardinality)
	}
	return bm, nil
}

// fileKey is the snapshot key of a logical file: its decoded path, plus the
// DV's unique id when it has one (PROTOCOL.md, "Action Reconciliation").
func fileKey(path string, dv *DeletionVector) string {
	if dv == nil {
		return pathKey(path)
	}
	return pathKey(path) + "\x00" + dv.UniqueID()
}

// liveRecords returns the rows of a file that are not deleted: numRecords
// minus the DV's cardinality.
func liveRecords(f *AddFile) (int64, bool) {
	n, ok := statsNumRecords(f.Stats)
	if !ok {
		return 0, false
	}
	if f.DeletionVector != nil {
		n -= f.DeletionVector.Cardinality
	}
	return n, true
}
