// What openFile() and FileHandle.close() take.

/** "r": read an existing file; "w": create or truncate it, then write. */
export type OpenMode = 'r' | 'w';

/** The directions a handle is open in: an OpenMode, or "rw" for both (fopenFile's "r+", "w+", "a+"). */
export type Access = OpenMode | 'rw';

/** fopen(3)'s modes (fopenFile): "b" changes nothing on Linux. */
export type FopenMode =
  'r' | 'rb' | 'w' | 'wb' | 'a' | 'ab' | 'r+' | 'rb+' | 'r+b' | 'w+' | 'wb+' | 'w+b' | 'a+' | 'ab+' | 'a+b';

export interface OpenOptions {
  /** Default "r". */
  mode?: OpenMode;
  /** Permission bits for a file that "w" creates (the umask applies). Default 0o644. */
  perm?: number;
  /**
   * "w" only: when the file is an executable that is running (ETXTBSY), unlink it and create
   * it anew (the running program keeps its copy).
   */
  force?: boolean;
  /**
   * "w" only: write into a new file with no name yet (O_TMPFILE) in `path`'s directory, and on
   * close give it a temporary name beside `path` (`.NAME.XXXXXXXX.ember-ga-part`) and rename it
   * over `path`, so `path` holds either its old content or all of the new, never a part;
   * close({ discard: true }), a failed write, a failed md5 check or the agent's exit drop the new
   * file instead, and so does the kernel when the process dies (the file never had a name).
   * Where the filesystem has no O_TMPFILE (NFS, vfat, some FUSE), the new file has its temporary
   * name from the start, and is removed instead of dropped. An existing file's mode and
   * owner carry over to the new one (the inode is new: hard links keep the old data, ACLs and
   * extended attributes are not copied). A symlink to a regular file has its target replaced;
   * anything else but a regular file or nothing there is refused (EINVAL), and so is a path
   * whose temporary name would be too long (ENAMETOOLONG): refused at the open, not at the close.
   */
  atomic?: boolean;
  /**
   * "r" only: hash the bytes the reads return, in order, as they are read; once a read found the
   * end of file, md5() is the digest of every byte read. A file that changes while it is read (a
   * growing log) has the md5 of what was read, which no later look at the file could tell.
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
