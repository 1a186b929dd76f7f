// What openFile() and GuestFile.close() take.

/**
 * openFile()'s modes, fs's flags (and fopen(3)'s modes) of the same names: "r" reads an existing
 * file; "r+" reads and writes it; "w" creates or truncates it, then writes; "w+" too, and reads;
 * "a" creates it if need be and writes at its end; "a+" too, and reads (from the start).
 */
export type OpenMode = 'r' | 'r+' | 'w' | 'w+' | 'a' | 'a+';

/** The directions a handle is open in: "r", "w", or "rw" for both ("r+", "w+", "a+"). */
export type Access = 'r' | 'w' | 'rw';

/** fopen(3)'s modes (fopenFile): openFile's, and each with a "b", which changes nothing on Linux. */
export type FopenMode = OpenMode | 'rb' | 'wb' | 'ab' | 'rb+' | 'r+b' | 'wb+' | 'w+b' | 'ab+' | 'a+b';

export interface OpenOptions {
  /** Default "r". Anything else is a TypeError (code ERR_INVALID_ARG_VALUE), as fs's flags. */
  mode?: OpenMode;
  /**
   * Permission bits for a file the open creates (the umask applies), as fs takes a mode: a
   * number (0o644), or an octal string ("644", "0o644"); & 0o7777. Default 0o644.
   */
  perm?: number | string;
  /**
   * "w" and "w+": when the file is an executable that is running (ETXTBSY), unlink it and create
   * it anew (the running program keeps its copy). The other modes keep the content, so ETXTBSY
   * stays an error.
   */
  force?: boolean;
  /**
   * "w" only (else a TypeError, code ERR_INVALID_ARG_VALUE): write into a new file with no name
   * yet (O_TMPFILE) in `path`'s directory, and on close give it a temporary name beside `path`
   * (`.NAME.XXXXXXXX.ember-ga-part`) and rename it over `path`, so `path` holds either its old
   * content or all of the new, never a part; close({ discard: true }), a failed write, a failed
   * md5 check or the agent's exit drop the new file instead, and so does the kernel when the
   * process dies (the file never had a name).
   * Where the filesystem has no O_TMPFILE (NFS, vfat, some FUSE), the new file has its temporary
   * name from the start, and is removed instead of dropped. An existing file's mode and
   * owner carry over to the new one (the inode is new: hard links keep the old data, ACLs and
   * extended attributes are not copied). A symlink to a regular file has its target replaced;
   * anything else but a regular file or nothing there is refused (EINVAL), and so is a path
   * whose temporary name would be too long (ENAMETOOLONG): refused at the open, not at the close.
   */
  atomic?: boolean;
  /**
   * "r" only (else a TypeError, code ERR_INVALID_ARG_VALUE): hash the bytes the reads return, in
   * order, as they are read; once a read found the end of file, md5() is the digest of every
   * byte read. A file that changes while it is read (a growing log) has the md5 of what was
   * read, which no later look at the file could tell.
   */
  md5?: boolean;
}

/** How close() ends a handle. */
export interface CloseOptions {
  /** An atomic handle: drop what was written (the temporary file); the original stays as it was. */
  discard?: boolean;
  /** "w": fsync the data to disk before closing (before the rename of an atomic handle). */
  fsync?: boolean;
  /**
   * "w": 32 hex digits the md5 of the file's content must equal before it is closed (read back
   * from the file itself). A mismatch rejects with EBADMSG; an atomic handle is then discarded,
   * leaving the original as it was.
   */
  md5?: string;
}
