//! The engine's thread count follows what is asked, at the next parallel section. In a
//! test binary of its own: the count is process-wide, and the library's tests compare
//! results with and without splitting over threads.

use rayon::prelude::*;

#[test]
fn the_size_follows_what_is_asked() {
    engine::threads::set_threads(1);
    assert_eq!(engine::threads::count(), 1);
    assert_eq!(engine::threads::install(rayon::current_num_threads), 1);
    engine::threads::set_threads(3);
    assert_eq!(engine::threads::count(), 3);
    let sum = engine::threads::install(|| (0..100u64).into_par_iter().sum::<u64>());
    assert_eq!(sum, 4950);
    engine::threads::set_threads(0);
    assert!(engine::threads::count() >= 1);
}

#[test]
fn one_chunk_runs_in_place_and_many_on_the_pool() {
    let mut data = vec![0u32; 10];
    let here = std::thread::current().id();
    let on_this_thread = std::sync::Mutex::new(Vec::new());
    engine::threads::for_each_chunk(&mut data, 16, |i, c| {
        c.iter_mut().for_each(|v| *v = i as u32 + 1);
        on_this_thread
            .lock()
            .unwrap()
            .push(std::thread::current().id() == here);
    });
    assert_eq!(data, vec![1; 10]);
    assert_eq!(*on_this_thread.lock().unwrap(), vec![true]);
    let mut data = vec![0u32; 100];
    engine::threads::for_each_chunk(&mut data, 10, |i, c| {
        c.iter_mut().for_each(|v| *v = i as u32)
    });
    assert!(data
        .chunks(10)
        .enumerate()
        .all(|(i, c)| c.iter().all(|&v| v == i as u32)));
}
