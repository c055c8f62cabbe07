package claimxsim

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Media defaults. Sizes are small by default so tests stay quick; raise
// Config.MediaMaxSize to several MiB to exercise streaming.
const (
	defaultMediaLinkTTL  = 5 * time.Minute
	defaultMediaMinSize  = 16 << 10
	defaultMediaMaxSize  = 256 << 10
	defaultOversizeBytes = 50 << 20
	// minMediaSize leaves room for the image header and trailer.
	minMediaSize = 64
)

// MediaFile describes the bytes the simulator serves for one media id when
// no fault applies, so tests can check what a client stored.
type MediaFile struct {
	MediaID      int64  `json:"media_id"`
	ProjectID    int64  `json:"project_id"`
	AssignmentID int64  `json:"assignment_id"`
	ContentType  string `json:"content_type"`
	Name         string `json:"name"`
	Size         int64  `json:"size"`
	// SHA256 is the lower-case hex SHA-256 of the bytes.
	SHA256 string `json:"sha256"`
}

// mediaState is the media side of the simulator: which project and
// assignment each media id belongs to, and the link signing secret.
type mediaState struct {
	secret []byte
	// byID maps a media id to its list entry as data.go seeded it.
	byID map[int64]map[string]any
	// project maps a media id to its project.
	project map[int64]int64
}

// initMedia indexes the seeded media and checks the media settings of cfg.
func (s *Server) initMedia() error {
	c := &s.cfg
	if c.MediaLinkTTL == 0 {
		c.MediaLinkTTL = defaultMediaLinkTTL
	}
	if c.MediaMinSize == 0 {
		c.MediaMinSize = defaultMediaMinSize
	}
	if c.MediaMaxSize == 0 {
		c.MediaMaxSize = max(defaultMediaMaxSize, c.MediaMinSize)
	}
	if c.MediaOversizeBytes == 0 {
		c.MediaOversizeBytes = defaultOversizeBytes
	}
	switch {
	case c.MediaLinkTTL < 0:
		return fmt.Errorf("media link TTL must not be negative, got %v", c.MediaLinkTTL)
	case c.MediaMinSize < minMediaSize || c.MediaMaxSize < c.MediaMinSize:
		return fmt.Errorf("media sizes must satisfy %d <= min <= max, got min %d max %d", minMediaSize, c.MediaMinSize, c.MediaMaxSize)
	case c.MediaOversizeBytes < minMediaSize:
		return fmt.Errorf("media oversize bytes must be at least %d, got %d", minMediaSize, c.MediaOversizeBytes)
	}
	m := &mediaState{byID: map[int64]map[string]any{}, project: map[int64]int64{}}
	if c.MediaLinkSecret != "" {
		m.secret = []byte(c.MediaLinkSecret)
	} else {
		// A random secret: links of one server are not valid on another.
		m.secret = make([]byte, 32)
		_, _ = rand.Read(m.secret)
	}
	for pid, items := range s.data.projectMedia {
		for _, it := range items {
			id := it["mediaID"].(int64)
			m.byID[id] = it
			m.project[id] = pid
		}
	}
	s.media = m
	return nil
}

// validateMediaFaults checks the media fields of f.
func validateMediaFaults(f Faults) error {
	if f.MediaErrorRate < 0 || f.MediaErrorRate > 1 {
		return fmt.Errorf("media_error_rate must be within 0..1, got %v", f.MediaErrorRate)
	}
	return nil
}

// mediaHash is a deterministic 64-bit value per seed, id and purpose.
func (s *Server) mediaHash(id int64, purpose string) uint64 {
	h := sha256.New()
	fmt.Fprintf(h, "%d/%d/%s", s.cfg.Seed, id, purpose)
	return binary.BigEndian.Uint64(h.Sum(nil))
}

// mediaType is image/png for about one id in five, image/jpeg otherwise.
func (s *Server) mediaType(id int64) (contentType, name string) {
	if s.mediaHash(id, "type")%5 == 0 {
		return "image/png", fmt.Sprintf("IMG_%d.png", id)
	}
	return "image/jpeg", fmt.Sprintf("IMG_%d.jpg", id)
}

// mediaSize is the normal size of id, within [MediaMinSize, MediaMaxSize].
func (s *Server) mediaSize(id int64) int64 {
	span := uint64(s.cfg.MediaMaxSize - s.cfg.MediaMinSize + 1)
	return s.cfg.MediaMinSize + int64(s.mediaHash(id, "size")%span)
}

// mediaReader streams size bytes for id: a valid image header, deterministic
// pseudo-random bytes, and (JPEG) the end-of-image marker. It never holds the
// whole content in memory.
func (s *Server) mediaReader(id, size int64, contentType string) io.Reader {
	var head, tail []byte
	if contentType == "image/png" {
		head = pngHeader()
	} else {
		head = []byte{0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00}
		tail = []byte{0xFF, 0xD9}
	}
	seed := sha256.Sum256(fmt.Appendf(nil, "claimxsim media %d/%d", s.cfg.Seed, id))
	body := size - int64(len(head)) - int64(len(tail))
	return io.MultiReader(bytes.NewReader(head), io.LimitReader(mrand.NewChaCha8(seed), body), bytes.NewReader(tail))
}

// pngHeader is the PNG signature and an IHDR chunk for a 64×64 RGB image.
func pngHeader() []byte {
	b := []byte{0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'}
	ihdr := []byte{'I', 'H', 'D', 'R', 0, 0, 0, 64, 0, 0, 0, 64, 8, 2, 0, 0, 0}
	b = binary.BigEndian.AppendUint32(b, 13)
	b = append(b, ihdr...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(ihdr))
}

// ExpectedMedia computes the size and SHA-256 of the bytes served for a
// seeded media id when no media fault applies to it. It reads the whole
// content, so it costs as much as a download.
func (s *Server) ExpectedMedia(id int64) (MediaFile, error) {
	it, ok := s.media.byID[id]
	if !ok {
		return MediaFile{}, fmt.Errorf("media %d is not seeded", id)
	}
	ct, name := s.mediaType(id)
	size := s.mediaSize(id)
	h := sha256.New()
	if _, err := io.Copy(h, s.mediaReader(id, size, ct)); err != nil {
		return MediaFile{}, fmt.Errorf("hashing media %d: %w", id, err)
	}
	return MediaFile{
		MediaID: id, ProjectID: s.media.project[id], AssignmentID: it["taskAssignmentId"].(int64),
		ContentType: ct, Name: name, Size: size, SHA256: hex.EncodeToString(h.Sum(nil)),
	}, nil
}

// MediaIDs lists the seeded media ids of an assignment, in the order of its
// form's image answers (empty for assignments without photos).
func (s *Server) MediaIDs(assignmentID int64) []int64 {
	var ids []int64
	for id, it := range s.media.byID {
		if it["taskAssignmentId"].(int64) == assignmentID {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids) // ids grow in the order data.go hands them out
	return ids
}

// mediaSig signs a media id and expiry (unix seconds).
func (s *Server) mediaSig(id, exp int64) string {
	mac := hmac.New(sha256.New, s.media.secret)
	fmt.Fprintf(mac, "%d:%d", id, exp)
	return hex.EncodeToString(mac.Sum(nil))
}

// MediaLink is the signed download link of id on the simulator at baseURL
// (such as URL() or an httptest server's URL), valid until expires (whole
// seconds). Tests use it to build expired links.
func (s *Server) MediaLink(baseURL string, id int64, expires time.Time) string {
	exp := expires.Unix()
	return fmt.Sprintf("%s/media/%d?exp=%d&sig=%s", strings.TrimSuffix(baseURL, "/"), id, exp, s.mediaSig(id, exp))
}

// requestBaseURL is the simulator's base URL as the client reached it, so
// links work behind httptest servers and any listen address.
func (s *Server) requestBaseURL(r *http.Request) string {
	if s.cfg.MediaBaseURL != "" {
		return s.cfg.MediaBaseURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// serveMediaList answers GET /export/project/{id}/media[?mediaIds=…] after
// auth, rate limit and faults: each requested id of the project with a fresh
// signed link. Ids that are not the project's are left out, as the real API
// most likely filters its own list rather than failing the whole request
// (unverified; the pipeline must treat a missing id as "no such photo").
func (s *Server) serveMediaList(w http.ResponseWriter, r *http.Request, project string) string {
	pid, err := strconv.ParseInt(project, 10, 64)
	if _, ok := s.data.projectBody[pid]; err != nil || !ok {
		writeJSON(w, http.StatusNotFound, apiError("project not found"))
		return "404"
	}
	media := s.data.projectMedia[pid]
	if q := r.URL.Query().Get("mediaIds"); q != "" {
		want := map[int64]bool{}
		for _, p := range strings.Split(q, ",") {
			n, err := strconv.ParseInt(strings.TrimSpace(p), 10, 64)
			if err != nil {
				writeJSON(w, http.StatusBadRequest, apiError("mediaIds must be a comma-separated list of integers"))
				return "400"
			}
			want[n] = true
		}
		var sel []map[string]any
		for _, m := range media {
			if want[m["mediaID"].(int64)] {
				sel = append(sel, m)
			}
		}
		media = sel
	}
	now := time.Now()
	s.mu.Lock()
	expired := s.faults.MediaLinksExpired
	s.mu.Unlock()
	expires := now.Add(s.cfg.MediaLinkTTL)
	if expired {
		expires = now.Add(-time.Second)
	}
	base := s.requestBaseURL(r)
	out := make([]map[string]any, 0, len(media))
	for _, m := range media {
		id := m["mediaID"].(int64)
		ct, name := s.mediaType(id)
		e := make(map[string]any, len(m))
		for k, v := range m {
			e[k] = v
		}
		e["mediaType"], e["mediaName"] = ct, name
		e["fullDownloadLink"] = s.MediaLink(base, id, expires)
		e["expiresAt"] = apiTime(time.Unix(expires.Unix(), 0))
		out = append(out, e)
	}
	writeJSON(w, http.StatusOK, out)
	return "200"
}

// serveMediaDownload answers GET (or HEAD) /media/{id}?exp=…&sig=…: the link
// is the credential, like a pre-signed object store URL, so there is no
// bearer auth, rate limit or ClaimX fault; only the media faults apply.
func (s *Server) serveMediaDownload(rw http.ResponseWriter, r *http.Request, idSeg string) {
	w := &statusWriter{ResponseWriter: rw}
	status := s.mediaDownload(w, r, idSeg)
	s.record(r, "media_download", status)
}

func (s *Server) mediaDownload(w *statusWriter, r *http.Request, idSeg string) string {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeJSON(w, http.StatusMethodNotAllowed, apiError("method not allowed"))
		return "405"
	}
	q := r.URL.Query()
	id, errID := strconv.ParseInt(idSeg, 10, 64)
	exp, errExp := strconv.ParseInt(q.Get("exp"), 10, 64)
	if errID != nil || errExp != nil || !hmac.Equal([]byte(q.Get("sig")), []byte(s.mediaSig(id, exp))) {
		writeJSON(w, http.StatusForbidden, apiError("access denied: the link signature is invalid"))
		return "403"
	}
	if time.Now().Unix() >= exp {
		writeJSON(w, http.StatusForbidden, map[string]any{
			"error": "access denied: the link expired", "expiredAt": apiTime(time.Unix(exp, 0)),
		})
		return "403"
	}
	if _, ok := s.media.byID[id]; !ok {
		writeJSON(w, http.StatusNotFound, apiError("media not found"))
		return "404"
	}
	s.mu.Lock()
	f := s.faults
	roll := s.rng.Float64()
	s.mu.Unlock()
	if roll < f.MediaErrorRate {
		code := http.StatusInternalServerError
		if roll < f.MediaErrorRate/2 {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, apiError("simulated media server error"))
		return strconv.Itoa(code)
	}
	ct, name := s.mediaType(id)
	size := s.mediaSize(id)
	switch {
	case slices.Contains(f.MediaEmpty, id):
		size = 0
	case slices.Contains(f.MediaOversize, id):
		size = s.cfg.MediaOversizeBytes
	}
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	h.Set("Content-Disposition", `inline; filename="`+url.PathEscape(name)+`"`)
	h.Set("Cache-Control", "private, no-store")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead || size == 0 {
		return "200"
	}
	// io.Copy writes in 32 KiB pieces: a slow reader only slows the writes.
	if _, err := io.Copy(w, s.mediaReader(id, size, ct)); err != nil {
		return "aborted"
	}
	return "200"
}
