import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A file system whose every call waits forever, until {@link HungMount.release}. */
export interface HungMount {
  readonly dir: string;
  /** Ends the mount: calls still waiting fail, the folder is removed. */
  release(): void;
}

/**
 * Mounts a FUSE file system that nobody serves: the kernel waits for an answer to every request on
 * it (stat, mkdir, open…), as on a hung network mount. Needs root (CAP_SYS_ADMIN) and /dev/fuse.
 * Closing our end of /dev/fuse aborts the connection, so waiting calls fail and the lazy unmount
 * completes.
 */
export function mountHungFileSystem(): HungMount {
  const dir = mkdtempSync(join(tmpdir(), 'featureflow-hung-'));
  const fd = openSync('/dev/fuse', 'r+');
  // The mount helper gets our /dev/fuse as its fd 3; the connection lives as long as we keep fd open.
  const mount = spawnSync(
    'mount',
    ['-t', 'fuse', '-o', 'fd=3,rootmode=40000,user_id=0,group_id=0', 'featureflow-hung', dir],
    {
      stdio: ['ignore', 'ignore', 'pipe', fd],
    },
  );
  if (mount.status !== 0) {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`cannot mount a FUSE file system (needs root and /dev/fuse): ${mount.stderr.toString().trim()}`);
  }
  let released = false;
  return {
    dir,
    release() {
      if (released) return;
      released = true;
      closeSync(fd);
      spawnSync('umount', ['-l', dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
