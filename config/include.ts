// The files of a config on disk: the main file and those `include:` names (paths, or globs in
// the last part of a path). Bounded against hostile input: only regular files are read, each at
// most MAX_FILE_BYTES, opened without blocking (a FIFO or device swapped in is refused, not
// waited on); a glob reads its folder entry by entry and stops past what a config may hold.
import { closeSync, constants, fstatSync, opendirSync, openSync, readSync, statSync, type Dir, type Stats } from 'node:fs';
import { dirname, isAbsolute, join, resolve as resolvePath } from 'node:path';

/** Largest config file (main or included). */
export const MAX_FILE_BYTES = 16 * 1024 * 1024;
/** All the files of one config together. */
export const MAX_TOTAL_BYTES = 64 * 1024 * 1024;
/** Files of one config, the main file included. */
export const MAX_FILES = 1000;
/** Levels of include below the main file. */
export const MAX_INCLUDE_DEPTH = 8;

/** A config file found on disk: who it is (device and inode: the same file by any path or link) and its size. */
export interface FoundFile {
  id: string;
  size: number;
}

/**
 * Finds a config file: a regular file (links followed) of at most MAX_FILE_BYTES, or why not as
 * "expected ..., found ..." (`shown` names the file in the message; "" where the error already does).
 */
export function findConfigFile(path: string, shown: string): FoundFile | { error: string } {
  const named = shown === '' ? '' : ` ${shown}`;
  let st: Stats;
  try {
    st = statSync(path);
  } catch (err) {
    return { error: `expected a readable config file${named}, found ${errorCode(err)}` };
  }
  if (!st.isFile()) return { error: `expected a readable config file${named}, found ${fileType(st)}` };
  if (st.size > MAX_FILE_BYTES) return { error: `expected a config file${named} of at most ${mebibytes(MAX_FILE_BYTES)}, found ${mebibytes(st.size)}` };
  return { id: fileId(st), size: st.size };
}

/** Reads a file findConfigFile found, as UTF-8: the same file (else an error), never more than MAX_FILE_BYTES. */
export function readConfigFile(path: string, found: FoundFile, shown: string): string | { error: string } {
  const named = shown === '' ? '' : ` ${shown}`;
  let fd: number;
  try {
    // O_NONBLOCK: had a FIFO been put in its place since, open would wait for a writer.
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    return { error: `expected a readable config file${named}, found ${errorCode(err)}` };
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || fileId(st) !== found.id) return { error: `expected a readable config file${named}, found it replaced while being read` };
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const buf = Buffer.allocUnsafe(Math.min(1 << 20, MAX_FILE_BYTES + 1 - total));
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      chunks.push(buf.subarray(0, n));
      total += n;
      // A file can grow after stat, and some (in /proc) say they are empty.
      if (total > MAX_FILE_BYTES) return { error: `expected a config file${named} of at most ${mebibytes(MAX_FILE_BYTES)}, found more` };
    }
    return Buffer.concat(chunks, total).toString('utf8');
  } catch (err) {
    return { error: `expected a readable config file${named}, found ${errorCode(err)}` };
  } finally {
    closeSync(fd);
  }
}

/** One file an include entry names: where it is, and how errors name it. */
export interface IncludeTarget {
  path: string;
  shown: string;
}

/**
 * The files an include entry names, resolved against `dir`, the including file's folder (`shownDir`
 * as errors name it). A path names one file, which need not exist yet (reading it says so). A
 * glob (`*`, `?`, `[...]` in the last part only) names the files of its folder that match, sorted
 * by name: folders (also through a link) and hidden files (unless the pattern starts with ".")
 * are left out, and the folder must exist. At most `max` + 1 matches are collected: more is an error for the caller.
 */
export function includeTargets(entry: string, dir: string, shownDir: string, max: number): IncludeTarget[] | { error: string } {
  const path = isAbsolute(entry) ? entry : resolvePath(dir, entry);
  const shown = isAbsolute(entry) ? entry : join(shownDir, entry);
  const slash = entry.lastIndexOf('/');
  const last = entry.slice(slash + 1);
  if (WILDCARD.test(entry.slice(0, slash + 1)))
    return { error: `expected wildcards (*, ? and [...]) only in the last part of the path, found ${JSON.stringify(entry)}` };
  if (!WILDCARD.test(last)) return [{ path, shown }];
  const match = globMatcher(last);
  if (match === undefined) return { error: `expected a pattern whose [...] lists characters, such as [abc] or [0-9], found ${JSON.stringify(entry)}` };
  const folder = dirname(path);
  let handle: Dir;
  try {
    handle = opendirSync(folder);
  } catch (err) {
    return { error: `expected an existing folder ${folder} for the pattern, found ${errorCode(err)}` };
  }
  const names: string[] = [];
  try {
    for (let e = handle.readSync(); e !== null && names.length <= max; e = handle.readSync()) {
      if (e.isDirectory() || (e.name.startsWith('.') && !last.startsWith('.')) || !match.test(e.name)) continue;
      if (!e.isSymbolicLink() || !isFolder(join(folder, e.name))) names.push(e.name);
    }
  } catch (err) {
    return { error: `expected a readable folder ${folder} for the pattern, found ${errorCode(err)}` };
  } finally {
    handle.closeSync();
  }
  return names.sort().map((name) => ({ path: join(folder, name), shown: join(dirname(shown), name) }));
}

const WILDCARD = /[*?[]/;

/** A glob's last part as a regular expression: `*` any characters, `?` one, `[abc]` `[a-z]` `[!a]` one of (or not of) a set. */
export function globMatcher(pattern: string): RegExp | undefined {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i] as string;
    if (ch === '*') re += '.*';
    else if (ch === '?') re += '.';
    else if (ch === '[') {
      const negate = pattern[i + 1] === '!' || pattern[i + 1] === '^';
      const start = i + (negate ? 2 : 1);
      // A "]" right after the opening bracket is one of the set, as in shells.
      const end = pattern.indexOf(']', start + 1);
      if (end < 0) return undefined;
      re += `[${negate ? '^' : ''}${pattern.slice(start, end).replace(/[\\[\]^]/g, '\\$&')}]`;
      i = end;
    } else re += ch.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  try {
    return new RegExp(`^${re}$`, 's');
  } catch {
    return undefined; // a range such as [z-a]
  }
}

function isFolder(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false; // a dangling link or a loop: reading it says which
  }
}

function fileId(st: Stats): string {
  return `${st.dev}:${st.ino}`;
}

function fileType(st: Stats): string {
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'no regular file';
}

function errorCode(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? String(err);
}

function mebibytes(bytes: number): string {
  const mib = bytes / (1024 * 1024);
  return `${Number.isInteger(mib) ? mib : mib.toFixed(1)} MiB`;
}
