// runtime_oracle reports what a container runtime makes of layer tars, for the
// differential tests of analyzerd's tar reader and layer merge.
//
//	runtime_oracle entries < layer.tar
//	    Go's archive/tar (what containerd and moby read layers with): one JSON object
//	    per entry that Next() returns, then {"end":"ok"} or {"error":"..."}.
//	runtime_oracle apply WORKDIR LAYER.tar...
//	    containerd's own applier (archive.Apply with the overlayfs whiteout converter,
//	    as the overlayfs snapshotter runs it) unpacks each layer into its own upper
//	    directory; an overlay mount of them all is then walked: one JSON object per
//	    path the container sees, then {"end":"ok"}, or {"layer":N,"error":"..."} when
//	    containerd refuses layer N.
//
// Built offline from Debian's golang-go and golang-github-containerd-containerd-dev.
package main

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/containerd/containerd/archive"
)

type entry struct {
	Name     string `json:"name"` // hex: names need not be UTF-8
	Typeflag int    `json:"typeflag"`
	Size     int64  `json:"size"`
	Mode     int64  `json:"mode"`
	UID      int    `json:"uid"`
	GID      int    `json:"gid"`
	Mtime    int64  `json:"mtime"`
	Linkname string `json:"linkname"` // hex
	Devmajor int64  `json:"devmajor"`
	Devminor int64  `json:"devminor"`
	Data     int64  `json:"data"` // bytes Read returned
	SHA256   string `json:"sha256"`
}

func emit(out *json.Encoder, v interface{}) {
	if err := out.Encode(v); err != nil {
		panic(err)
	}
}

func entries() {
	out := json.NewEncoder(os.Stdout)
	tr := tar.NewReader(os.Stdin)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			emit(out, map[string]string{"end": "ok"})
			return
		}
		if err != nil {
			emit(out, map[string]string{"error": err.Error()})
			return
		}
		h := sha256.New()
		n, err := io.Copy(h, tr)
		e := entry{
			Name: hex.EncodeToString([]byte(hdr.Name)), Typeflag: int(hdr.Typeflag), Size: hdr.Size,
			Mode: hdr.Mode, UID: hdr.Uid, GID: hdr.Gid, Mtime: hdr.ModTime.Unix(),
			Linkname: hex.EncodeToString([]byte(hdr.Linkname)), Devmajor: hdr.Devmajor,
			Devminor: hdr.Devminor, Data: n, SHA256: hex.EncodeToString(h.Sum(nil)),
		}
		emit(out, e)
		if err != nil {
			emit(out, map[string]string{"error": err.Error()})
			return
		}
	}
}

type visible struct {
	Path   string `json:"path"` // hex
	Type   string `json:"type"`
	Mode   uint32 `json:"mode"` // permission bits with setuid/setgid/sticky
	UID    uint32 `json:"uid"`
	GID    uint32 `json:"gid"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256,omitempty"`
	Link   string `json:"link,omitempty"` // hex
	Rdev   uint64 `json:"rdev,omitempty"`
}

func kind(mode uint32) string {
	switch mode & syscall.S_IFMT {
	case syscall.S_IFREG:
		return "file"
	case syscall.S_IFDIR:
		return "dir"
	case syscall.S_IFLNK:
		return "symlink"
	case syscall.S_IFCHR:
		return "char"
	case syscall.S_IFBLK:
		return "block"
	case syscall.S_IFIFO:
		return "fifo"
	}
	return "other"
}

func walk(out *json.Encoder, mnt string) error {
	var paths []string
	err := filepath.WalkDir(mnt, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if path != mnt {
			paths = append(paths, path)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(paths)
	for _, path := range paths {
		var st syscall.Stat_t
		if err := syscall.Lstat(path, &st); err != nil {
			if os.IsNotExist(err) {
				continue // a whiteout: listed in a directory only one layer has, never looked up
			}
			return err
		}
		v := visible{Path: hex.EncodeToString([]byte(path[len(mnt):])), Type: kind(st.Mode),
			Mode: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid}
		switch v.Type {
		case "file":
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			h := sha256.New()
			v.Size, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return err
			}
			v.SHA256 = hex.EncodeToString(h.Sum(nil))
		case "symlink":
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			v.Link = hex.EncodeToString([]byte(target))
		case "char", "block":
			v.Rdev = st.Rdev
		}
		emit(out, v)
	}
	return nil
}

func apply(work string, layers []string) {
	out := json.NewEncoder(os.Stdout)
	ctx := context.Background()
	var uppers []string
	for i, layer := range layers {
		upper := filepath.Join(work, strconv.Itoa(i))
		if err := os.MkdirAll(upper, 0o755); err != nil {
			panic(err)
		}
		f, err := os.Open(layer)
		if err != nil {
			panic(err)
		}
		opts := []archive.ApplyOpt{archive.WithConvertWhiteout(archive.OverlayConvertWhiteout)}
		if len(uppers) > 0 {
			parents := make([]string, len(uppers))
			for j := range uppers {
				parents[j] = uppers[len(uppers)-1-j] // nearest first, as the snapshotter lists them
			}
			opts = append(opts, archive.WithParents(parents))
		}
		_, err = archive.Apply(ctx, upper, f, opts...)
		f.Close()
		if err != nil {
			emit(out, map[string]interface{}{"layer": i, "error": err.Error()})
			return
		}
		uppers = append(uppers, upper)
	}
	// overlayfs wants two lower directories at least; an empty one changes nothing.
	empty := filepath.Join(work, "empty")
	mnt := filepath.Join(work, "merged")
	for _, dir := range []string{empty, mnt} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			panic(err)
		}
	}
	lowers := []string{}
	for j := len(uppers) - 1; j >= 0; j-- {
		lowers = append(lowers, uppers[j])
	}
	lowers = append(lowers, empty)
	if err := syscall.Mount("overlay", mnt, "overlay", syscall.MS_RDONLY,
		"lowerdir="+strings.Join(lowers, ":")); err != nil {
		panic(fmt.Sprintf("mount overlay: %v", err))
	}
	defer syscall.Unmount(mnt, 0)
	if err := walk(out, mnt); err != nil {
		panic(err)
	}
	emit(out, map[string]string{"end": "ok"})
}

func main() {
	if len(os.Args) >= 2 && os.Args[1] == "entries" {
		entries()
		return
	}
	if len(os.Args) >= 3 && os.Args[1] == "apply" {
		apply(os.Args[2], os.Args[3:])
		return
	}
	fmt.Fprintln(os.Stderr, "usage: runtime_oracle entries < layer.tar | runtime_oracle apply WORKDIR LAYER.tar...")
	os.Exit(2)
}
