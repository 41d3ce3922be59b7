// js-busy-loop: spins forever. Stopped by fuel or by the deadline.
import { handler, log } from '../../templates/js/step.js';

export function describe() {
  return { name: 'js-busy-loop', version: '0.1.0', description: 'Spins forever (hostile, JavaScript)' };
}

export const run = handler(() => {
  log.info('spinning');
  let x = 0;
  for (;;) {
    x = (x * 31 + 7) % 1000003;
  }
});
