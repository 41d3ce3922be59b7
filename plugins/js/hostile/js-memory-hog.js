// js-memory-hog: keeps 1 MiB strings alive forever. Stopped by the memory cap.
import { handler } from '../../templates/js/step.js';

export function describe() {
  return { name: 'js-memory-hog', version: '0.1.0', description: 'Allocates without end (hostile, JavaScript)' };
}

export const run = handler(() => {
  const hoard = [];
  for (let i = 0; ; i++) {
    hoard.push('x'.repeat(1 << 20) + i);
  }
});
