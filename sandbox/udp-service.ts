// What the sandbox's UDP services (the time server, the RADIUS server) share: a socket bound on a
// loopback port (0 picks one) that hands every datagram to the service, and its closing.
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';

/** Binds a UDP socket on host:port (0 picks a port). Later socket errors are ignored (the sandbox serves faults on purpose). */
export async function bindUdp(host: string, port: number, onMessage: (socket: Socket, msg: Buffer, from: RemoteInfo) => void): Promise<Socket> {
  const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  socket.on('message', (msg, from) => onMessage(socket, msg, from));
  socket.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, host, () => {
      socket.removeListener('error', reject);
      resolve();
    });
  });
  return socket;
}

/** Closes a socket bound by bindUdp (nothing when there is none). */
export async function closeUdp(socket: Socket | undefined): Promise<void> {
  if (socket) await new Promise<void>((resolve) => socket.close(() => resolve()));
}
