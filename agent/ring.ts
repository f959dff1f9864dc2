// The slot bookkeeping of a fixed-size ring (the run history, the detector's baseline window):
// which slot a new value goes to, and which slot holds the k-th oldest. The values live in the
// owner's own typed arrays. Slots fill from 0 upwards before the ring wraps, so while it is not
// full its values are slots [0, size).
export class Ring {
  private head = 0;
  private filled = 0;

  constructor(readonly capacity: number) {}

  /** How many slots hold a value. */
  get size(): number {
    return this.filled;
  }

  /** The slot for a new value: the next free one, or the oldest value's once full. */
  next(): number {
    const i = this.head;
    this.head = (i + 1) % this.capacity;
    if (this.filled < this.capacity) this.filled++;
    return i;
  }

  /** The slot of the k-th oldest value (0: the oldest, size - 1: the newest). */
  slot(k: number): number {
    return (this.head - this.filled + k + this.capacity) % this.capacity;
  }

  clear(): void {
    this.head = 0;
    this.filled = 0;
  }
}
